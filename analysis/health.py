"""Whether a finished run learned anything: one health line and a plain verdict, computed from the
run's own pairs statistics and training log.

A run whose ablated model answers nothing, whose pairs were all dropped, or whose DPO margins never
moved still finishes every stage; this is what keeps such a run from being read as a result.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from retmask.io import read_json, read_jsonl
from retmask.rundir import RunDir

MIN_STEPS = 4  # fewer optimizer steps than this cannot show a trend
MIN_PAIR_SHARE = 0.5  # below this, most prompts were filtered away: the drop counts say why
MIN_MARGIN_RISE = 0.01  # DPO reward margins start at 0 (policy = reference); "flat" below this rise
MIN_LOSS_FALL = 0.01  # SFT: relative fall of the loss


@dataclass
class Health:
    trainer: str
    prompts: int
    examples: int  # pairs (DPO) or conversations (SFT)
    kept_empty_rejected: int
    steps: int
    loss: tuple[float, float] | None  # first logged, mean of the last quarter
    margins: tuple[float, float] | None
    final_reward_accuracy: float | None
    learned: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        what = "pairs" if self.trainer == "dpo" else "examples"
        share = self.examples / self.prompts if self.prompts else 0.0
        parts = [f"{self.examples} {what} from {self.prompts} prompts ({share:.0%}"
                 + (f"; {self.kept_empty_rejected} with an empty rejected response)" if self.trainer == "dpo"
                    else ")"),
                 f"{self.steps} {self.trainer.upper()} steps"]
        if self.loss:
            parts.append(f"loss {self.loss[0]:.3f} → {self.loss[1]:.3f}")
        if self.margins:
            parts.append(f"margins {self.margins[0]:.3f} → {self.margins[1]:.3f}")
        if self.final_reward_accuracy is not None:
            parts.append(f"final reward accuracy {self.final_reward_accuracy:.2f}")
        return ", ".join(parts)

    @property
    def verdict(self) -> str:
        name = self.trainer.upper()
        if self.learned:
            return f"{name} learned" + (f" (but: {'; '.join(self.problems)})" if self.problems else "")
        return f"{name} did NOT learn: {'; '.join(self.problems)}. This run is not a result."

    def to_dict(self) -> dict:
        return {**asdict(self), "line": self.line, "verdict": self.verdict}


def _trend(log: list[dict], key: str) -> tuple[float, float] | None:
    """The first logged value and the mean of the last quarter of the log (single steps are noisy)."""
    values = [row[key] for row in log if key in row]
    if not values:
        return None
    tail = values[-max(1, len(values) // 4):]
    return values[0], sum(tail) / len(tail)


def judge(statistics: dict, log: list[dict], trainer: str, steps: int) -> Health:
    """The health of a run from its pairs statistics, training log and optimizer step count."""
    accuracies = _trend(log, "rewards/accuracies")
    health = Health(
        trainer=trainer, prompts=statistics.get("prompts", 0), examples=statistics["pairs"],
        kept_empty_rejected=statistics.get("kept_empty_rejected", 0), steps=steps,
        loss=_trend(log, "loss"), margins=_trend(log, "rewards/margins"),
        final_reward_accuracy=accuracies[1] if accuracies else None)
    failures, warnings = [], []
    if health.prompts and health.examples < MIN_PAIR_SHARE * health.prompts:
        warnings.append(f"too few pairs: {health.examples} of {health.prompts} prompts (see the drop counts)")
    if steps < MIN_STEPS:
        failures.append(f"only {steps} optimizer steps (need at least {MIN_STEPS}: more pairs, epochs or a "
                        "smaller global batch)")
    if trainer == "dpo":
        if health.margins is None or health.margins[1] - health.margins[0] < MIN_MARGIN_RISE:
            start, end = health.margins or (0.0, 0.0)
            failures.append(f"flat margins ({start:.3f} → {end:.3f})")
        if health.final_reward_accuracy is None or health.final_reward_accuracy <= 0.5:
            failures.append("reward accuracy at chance or below")
    elif health.loss is None or health.loss[1] > health.loss[0] * (1 - MIN_LOSS_FALL):
        failures.append("the loss did not fall")
    health.learned = not failures
    health.problems = warnings + failures
    return health


def run_health(run: RunDir) -> Health:
    summary = read_json(run.stage_dir("train") / "summary.json")
    return judge(read_json(run.stage_dir("pairs") / "statistics.json"),
                 read_jsonl(run.stage_dir("train") / "train_log.jsonl"),
                 summary.get("trainer", "dpo"), summary.get("global_step", 0))
