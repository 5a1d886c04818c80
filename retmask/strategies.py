"""Where the rejected response comes from, and how the model is trained: RetMask and its
baselines as configuration, not code forks.

A strategy names the head-selection rule of its mask (if it masks), the source of rejected
samples, the trainer, and whether a judge orders each pair (win-lose-pair: two samples of the
normal model, the one the judge prefers is chosen).
"""
from __future__ import annotations

from dataclasses import dataclass

from retmask.errors import UserError


@dataclass(frozen=True)
class Strategy:
    name: str
    mask_rule: str | None  # selection rule of the heads to mask; None: no mask
    # "masked": the ablated model; "rejected_model": another model; "normal": a second sample of
    # the normal model; "none"
    rejected_from: str
    trainer: str  # "dpo" or "sft"
    judged: bool = False  # a judge decides which of the two samples is chosen


STRATEGIES = {
    s.name: s
    for s in (
        Strategy("retrieval-mask", "selection", "masked", "dpo"),  # RetMask: selection.rule (threshold τ)
        Strategy("random-mask", "random", "masked", "dpo"),  # same count as the τ set, any heads
        Strategy("non-retrieval-mask", "non_retrieval", "masked", "dpo"),  # same count, no retrieval head
        Strategy("smaller-model", None, "rejected_model", "dpo"),  # rejected from a smaller model
        Strategy("sft", None, "none", "sft"),  # SFT on the chosen responses alone
        Strategy("win-lose-pair", None, "normal", "dpo", judged=True),  # two normal samples ranked by a judge
    )
}


# Mask rules of the control strategies: heads drawn at random (by ExperimentConfig.control_seed).
CONTROL_RULES = ("random", "non_retrieval")


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise UserError(f"strategy {name!r}: expected one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
