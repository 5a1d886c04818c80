"""Stage: choose the heads to mask by the configured rule; save the set and the rule."""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.io import read_json, write_json
from retmask.rundir import RunDir


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.heads import mean_scores, select_heads

    scores = mean_scores(read_json(run.stage_dir("merge_scores") / "retrieval_scores.json"))
    s = cfg.selection
    selection = select_heads(scores, s.rule, s.tau, s.top_k, s.count, s.seed)
    if not selection.heads:
        raise ValueError(f"selection rule {s.rule!r} chose no heads (tau={s.tau}); the best head scored "
                         f"{max(scores.values()):.3f}: lower selection.tau or use rule top_k")
    write_json(run.stage_dir("select_heads") / "heads.json", selection.to_dict())
