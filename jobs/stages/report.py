"""Stage: the run's report (markdown + PNG) from the outputs of every earlier stage."""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.rundir import RunDir


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from analysis.run_report import write_run_report

    write_run_report(run, cfg.selection.tau)
