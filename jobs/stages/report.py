"""Stage: the run's report (markdown + PNG) from the outputs of every earlier stage, and the
trained model's card rewritten with what the evaluation found."""
from __future__ import annotations

from typing import TYPE_CHECKING

from retmask.config import ExperimentConfig
from retmask.io import read_json
from retmask.rundir import RunDir

if TYPE_CHECKING:
    from retmask.cards import Evaluation


def evaluation_summary(run: RunDir) -> Evaluation:
    """The evaluate stage's NIAH and retrieval-score change, and the health the report states."""
    from retmask.cards import Evaluation

    evaluated = run.stage_dir("evaluate")
    return Evaluation(niah=read_json(evaluated / "niah.json"),
                      retrieval_change=read_json(evaluated / "retrieval_change.json"),
                      health=read_json(run.report_dir / "metrics.json")["health"])


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from analysis.run_report import write_run_report
    from jobs.stages.train import write_model_card
    from retmask.tracking import log_results, run_destination

    write_run_report(run, cfg.selection.tau)
    # the report's headline figures (metrics.json) go to the run's trackers too
    log_results(run_destination(cfg, run), "report", read_json(run.report_dir / "metrics.json"))
    write_model_card(cfg, run, evaluation_summary(run))
