"""Stage: the retrieval heads (selection rule, τ by default) and the heads the strategy masks:
the retrieval heads themselves, or a control of the same count. Both sets and the rules are saved."""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.io import read_json, write_json
from retmask.rundir import RunDir


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.heads import mean_scores, select_heads
    from retmask.strategies import get_strategy

    scores = mean_scores(read_json(run.stage_dir("merge_scores") / "retrieval_scores.json"))
    s = cfg.selection
    retrieval = select_heads(scores, s.rule, s.tau, s.top_k, s.count, s.seed, min_heads=s.min_heads)
    if not retrieval.heads:
        raise ValueError(f"selection rule {s.rule!r} chose no heads (tau={s.tau}); the best head scored "
                         f"{max(scores.values()):.3f}: lower selection.tau or use rule top_k")
    strategy = get_strategy(cfg.strategy)
    if strategy.mask_rule in (None, "selection"):
        masked = retrieval if strategy.mask_rule else None
    else:  # a control: as many heads as the retrieval set, drawn by the strategy's rule
        masked = select_heads(scores, strategy.mask_rule, s.tau, seed=cfg.control_seed, retrieval=retrieval.heads)
    write_json(run.stage_dir("select_heads") / "heads.json", {
        "model": cfg.synthesis_source().path,  # the heads' model: the synthesis model, detected and masked
        "strategy": cfg.strategy,
        "heads": masked.heads if masked else [],
        "count": len(masked.heads) if masked else 0,
        "rule": masked.rule if masked else None,
        "retrieval_heads": retrieval.heads,
        "retrieval_rule": retrieval.to_dict(),
    })
