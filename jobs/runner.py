"""What a job runs: one shard of one stage, read from and written to the run directory."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import yaml

from jobs.pipeline import build_stages, stage_fingerprints
from retmask.config import ExperimentConfig, from_dict
from retmask.rundir import RunDir


def load_run_config(run: RunDir) -> ExperimentConfig:
    """The resolved config saved in the run directory (paths already resolved)."""
    return from_dict(ExperimentConfig, yaml.safe_load(run.config_path.read_text()))


def run_shard(run_root: str, stage_name: str, shard: int, threads: int = 0) -> str:
    """Run one shard and mark it done; a shard already done under the same fingerprint is skipped.

    `threads` caps torch's CPU threads: shards sharing a machine would otherwise each start one
    thread per core and slow each other down many times over.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local paths; never reach for a hub
    run = RunDir(Path(run_root))
    cfg = load_run_config(run)
    stages = build_stages(cfg)
    stage = next(s for s in stages if s.name == stage_name)
    stage_print = stage_fingerprints(cfg, stages)[stage_name]
    if shard in run.done_shards(stage_name, stage_print):
        return "already done"
    started = time.perf_counter()
    stage.function()(cfg, run, shard)
    run.mark_done(stage_name, shard, stage_print, time.perf_counter() - started)
    return "done"
