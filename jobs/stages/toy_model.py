"""Stage: build the toy model for its recipe, or reuse the cached one."""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.io import write_json
from retmask.rundir import RunDir


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.toy.cache import ensure_toy_model
    from retmask.toy.train import read_summary

    path = ensure_toy_model(cfg.toy_model, lambda progress: run.report_progress("toy_model", shard, progress),
                            every_s=1.0)
    write_json(run.stage_dir("toy_model") / "toy_model.json", {"path": str(path), "summary": read_summary(path)})
