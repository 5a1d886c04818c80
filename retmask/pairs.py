"""Preference pairs: chosen (normal model) and rejected (ablated model) joined on prompt id.

Rows missing on one side are counted, never a crash. An empty chosen response is dropped (nothing
to prefer); an empty rejected one is kept by default, since the ablated model failing to answer is
the signal RetMask learns from, and counted. Every drop is counted by its reason. The output is
TRL's conversational prompt/chosen/rejected form.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from retmask.config import PairsConfig


@dataclass
class PairBuild:
    pairs: list[dict]
    prompts: int = 0  # distinct prompts the pairs were built from
    dropped: Counter = field(default_factory=Counter)
    kept_empty_rejected: int = 0

    def statistics(self) -> dict:
        """Table-11-style statistics: pair count and mean input / output tokens."""
        n = len(self.pairs)

        def mean(key: str) -> float:
            return round(sum(p[key] for p in self.pairs) / n, 2) if n else 0.0

        return {
            "prompts": self.prompts,
            "pairs": n,
            "mean_input_tokens": mean("prompt_tokens"),
            "mean_chosen_tokens": mean("chosen_tokens"),
            "mean_rejected_tokens": mean("rejected_tokens"),
            "kept_empty_rejected": self.kept_empty_rejected,
            "dropped": dict(sorted(self.dropped.items())),
        }


def build_pairs(chosen_rows: list[dict], rejected_rows: list[dict], rules: PairsConfig = PairsConfig()) -> PairBuild:
    chosen = {row["prompt_id"]: row for row in chosen_rows}
    rejected = {row["prompt_id"]: row for row in rejected_rows}
    prompt_ids = sorted(chosen.keys() | rejected.keys())
    build = PairBuild(pairs=[], prompts=len(prompt_ids))
    for prompt_id in prompt_ids:
        if prompt_id not in rejected:
            build.dropped["missing_rejected"] += 1
            continue
        if prompt_id not in chosen:
            build.dropped["missing_chosen"] += 1
            continue
        good, bad = chosen[prompt_id], rejected[prompt_id]
        empty_rejected = not bad["response"].strip()
        if not good["response"].strip() and rules.drop_empty_chosen:
            build.dropped["empty_chosen"] += 1
            continue
        if empty_rejected and rules.drop_empty_rejected:
            build.dropped["empty_rejected"] += 1
            continue
        if rules.drop_identical and good["response"].strip() == bad["response"].strip():
            build.dropped["identical"] += 1
            continue
        build.kept_empty_rejected += empty_rejected
        build.pairs.append({
            "prompt_id": prompt_id,
            "prompt": good["messages"],
            "chosen": [{"role": "assistant", "content": good["response"]}],
            "rejected": [{"role": "assistant", "content": bad["response"]}],
            "prompt_tokens": good["prompt_tokens"],
            "chosen_tokens": good["completion_tokens"],
            "rejected_tokens": bad["completion_tokens"],
        })
    return build


def build_sft(chosen_rows: list[dict], rules: PairsConfig = PairsConfig()) -> PairBuild:
    """SFT examples from the chosen responses alone (the SFT baseline), in TRL's conversational
    prompt/completion form."""
    build = PairBuild(pairs=[], prompts=len(chosen_rows))
    for row in sorted(chosen_rows, key=lambda r: r["prompt_id"]):
        if rules.drop_empty_chosen and not row["response"].strip():
            build.dropped["empty_chosen"] += 1
            continue
        build.pairs.append({
            "prompt_id": row["prompt_id"],
            "prompt": row["messages"],
            "completion": [{"role": "assistant", "content": row["response"]}],
            "prompt_tokens": row["prompt_tokens"],
            "chosen_tokens": row["completion_tokens"],
            "rejected_tokens": 0,
        })
    return build
