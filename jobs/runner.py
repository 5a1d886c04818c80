"""What a job runs: one shard of one stage, read from and written to the run directory."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from submitit.helpers import Checkpointable

from jobs.pipeline import build_stages, stage_fingerprints
from retmask.config import ExperimentConfig, read_saved_config, save_config
from retmask.rundir import RunDir


def record_config(cfg: ExperimentConfig) -> RunDir:
    """Write the resolved config into its run directory, keeping a different earlier one."""
    run = RunDir(cfg.run_dir)
    previous = run.config_path.read_text() if run.config_path.is_file() else None
    save_config(cfg, run.config_path)
    if previous is not None and previous != run.config_path.read_text():
        history = run.root / "superseded" / f"config-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
        history.parent.mkdir(parents=True, exist_ok=True)
        history.write_text(previous)
    return run


def load_run_config(run: RunDir) -> ExperimentConfig:
    """The resolved config saved in the run directory (paths already resolved)."""
    return read_saved_config(run.config_path)


FAULTS_FILE = "inject_faults.json"


def inject_fault(run: RunDir, stage: str, shard: int) -> None:
    """Fail this shard once if the run's fault-injection file names it (for testing resume).

    The entry is removed before failing, so a resubmitted shard runs normally.
    """
    import fcntl
    import json

    from retmask.io import write_json

    path = run.root / FAULTS_FILE
    if not path.is_file():
        return
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        faults = json.loads(path.read_text()) if path.is_file() else []
        key = f"{stage}:{shard}"
        if key not in faults:
            return
        write_json(path, [f for f in faults if f != key])
    raise RuntimeError(f"fault injected into {key} by {path}")


def run_shard(run_root: str, stage_name: str, shard: int, threads: int = 0) -> str:
    """Run one shard and mark it done; a shard already done under the same fingerprint is skipped.

    `threads` caps torch's CPU threads: shards sharing a machine would otherwise each start one
    thread per core and slow each other down many times over.
    """
    threads = threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "0"))
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
    inject_fault(run, stage_name, shard)
    started = time.perf_counter()
    stage.function()(cfg, run, shard)
    run.mark_done(stage_name, shard, stage_print, time.perf_counter() - started)
    return "done"


class ShardTask(Checkpointable):
    """One shard as a SLURM job that requeues itself when it nears its time limit or is
    preempted (submitit sends USR2, then resubmits the same call); rerun, the shard continues from
    what it already wrote: rows for detection and synthesis, the latest checkpoint for training."""

    def __call__(self, run_root: str, stage_name: str, shard: int, threads: int = 0) -> str:
        return run_shard(run_root, stage_name, shard, threads)
