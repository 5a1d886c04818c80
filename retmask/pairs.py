"""Preference pairs: chosen (normal model) and rejected (ablated model) joined on prompt id.

Rows missing on one side are counted, never a crash; empty and identical pairs are dropped with
their reason counted. The output is TRL's conversational prompt/chosen/rejected form.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PairBuild:
    pairs: list[dict]
    dropped: Counter = field(default_factory=Counter)

    def statistics(self) -> dict:
        """Table-11-style statistics: pair count and mean input / output tokens."""
        n = len(self.pairs)

        def mean(key: str) -> float:
            return round(sum(p[key] for p in self.pairs) / n, 2) if n else 0.0

        return {
            "pairs": n,
            "mean_input_tokens": mean("prompt_tokens"),
            "mean_chosen_tokens": mean("chosen_tokens"),
            "mean_rejected_tokens": mean("rejected_tokens"),
            "dropped": dict(sorted(self.dropped.items())),
        }


def build_pairs(chosen_rows: list[dict], rejected_rows: list[dict], drop_empty: bool = True,
                drop_identical: bool = True) -> PairBuild:
    chosen = {row["prompt_id"]: row for row in chosen_rows}
    rejected = {row["prompt_id"]: row for row in rejected_rows}
    build = PairBuild(pairs=[])
    for prompt_id in sorted(chosen.keys() | rejected.keys()):
        if prompt_id not in rejected:
            build.dropped["missing_rejected"] += 1
            continue
        if prompt_id not in chosen:
            build.dropped["missing_chosen"] += 1
            continue
        good, bad = chosen[prompt_id], rejected[prompt_id]
        if drop_empty and (not good["response"].strip() or not bad["response"].strip()):
            build.dropped["empty"] += 1
            continue
        if drop_identical and good["response"].strip() == bad["response"].strip():
            build.dropped["identical"] += 1
            continue
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


def build_sft(chosen_rows: list[dict], drop_empty: bool = True) -> PairBuild:
    """SFT examples from the chosen responses alone (the SFT baseline), in TRL's conversational
    prompt/completion form."""
    build = PairBuild(pairs=[])
    for row in sorted(chosen_rows, key=lambda r: r["prompt_id"]):
        if drop_empty and not row["response"].strip():
            build.dropped["empty"] += 1
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
