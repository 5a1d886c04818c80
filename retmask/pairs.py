"""Preference pairs: chosen (normal model) and rejected (ablated model) joined on prompt id.

Rows missing on one side are counted, never a crash. An empty chosen response is dropped (nothing
to prefer); an empty rejected one is kept by default, since the ablated model failing to answer is
the signal RetMask learns from, and counted. Responses cut off at max_new_tokens are counted per
side and dropped as `PairsConfig` says. Every drop is counted by its reason. The output is TRL's
conversational prompt/chosen/rejected form; a reasoning model's responses keep their reasoning.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from retmask.synthesis_config import PairsConfig


@dataclass
class PairBuild:
    pairs: list[dict]
    prompts: int = 0  # distinct prompts the pairs were built from
    dropped: Counter = field(default_factory=Counter)
    kept_empty_rejected: int = 0
    kept_truncated: Counter = field(default_factory=Counter)  # side -> kept pairs cut off on that side
    kept_unfinished_reasoning: Counter = field(default_factory=Counter)  # side -> cut off inside the reasoning

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
            "kept_truncated_chosen": self.kept_truncated["chosen"],
            "kept_truncated_rejected": self.kept_truncated["rejected"],
            "kept_unfinished_reasoning_chosen": self.kept_unfinished_reasoning["chosen"],
            "kept_unfinished_reasoning_rejected": self.kept_unfinished_reasoning["rejected"],
            "dropped": dict(sorted(self.dropped.items())),
        }


def assistant_message(row: dict, rules: PairsConfig, reasoning_field: bool) -> dict:
    """The response as an assistant message. Its reasoning goes where the model's chat template
    reads it back: `reasoning_content` when the template knows that field (Qwen3), else inline in
    the think block the model wrote."""
    reasoning = row.get("reasoning")
    if reasoning is None or not rules.keep_reasoning:
        return {"role": "assistant", "content": row["response"]}
    if reasoning_field:
        return {"role": "assistant", "content": row["response"], "reasoning_content": reasoning}
    if not row.get("reasoning_finished", True):  # cut off inside it: the block stays open, as written
        return {"role": "assistant", "content": f"<think>\n{reasoning}"}
    return {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{row['response']}"}


def _unfinished(row: dict) -> bool:
    return row.get("reasoning_finished") is False


def _truncated(row: dict) -> bool:
    return row.get("finish_reason") == "length"


def build_pairs(chosen_rows: list[dict], rejected_rows: list[dict], rules: PairsConfig = PairsConfig(),
                reasoning_field: bool = False) -> PairBuild:
    """`reasoning_field`: the chat template reads `reasoning_content` (see `assistant_message`)."""
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
        unfinished = [side for side, row in (("chosen", good), ("rejected", bad)) if _unfinished(row)]
        if unfinished and rules.unfinished_reasoning == "drop":
            build.dropped[f"unfinished_reasoning_{unfinished[0]}"] += 1
            continue
        empty_rejected = not bad["response"].strip()
        if not good["response"].strip() and rules.drop_empty_chosen:
            build.dropped["empty_chosen"] += 1
            continue
        if empty_rejected and rules.drop_empty_rejected:
            build.dropped["empty_rejected"] += 1
            continue
        if _truncated(good) and rules.drop_truncated_chosen:
            build.dropped["truncated_chosen"] += 1
            continue
        if _truncated(bad) and rules.drop_truncated_rejected:
            build.dropped["truncated_rejected"] += 1
            continue
        chosen_message = assistant_message(good, rules, reasoning_field)
        rejected_message = assistant_message(bad, rules, reasoning_field)
        if rules.drop_identical and chosen_message == rejected_message:
            build.dropped["identical"] += 1
            continue
        build.kept_empty_rejected += empty_rejected
        build.kept_truncated.update(side for side, row in (("chosen", good), ("rejected", bad)) if _truncated(row))
        build.kept_unfinished_reasoning.update(unfinished)
        build.pairs.append({
            "prompt_id": prompt_id,
            "prompt": good["messages"],
            "chosen": [chosen_message],
            "rejected": [rejected_message],
            "prompt_tokens": good["prompt_tokens"],
            "chosen_tokens": good["completion_tokens"],
            "rejected_tokens": bad["completion_tokens"],
        })
    return build


def order_by_verdicts(first_rows: list[dict], second_rows: list[dict], verdicts: dict,
                      ties: str = "drop") -> tuple[list, list, Counter]:
    """Win-lose pairs: for each prompt the sample its judge prefers goes to the chosen side. Prompts
    the judge could not separate (a tie, or a rating it did not give) are dropped and counted, or
    with ties="keep" kept in sampled order (the first sample chosen)."""
    first = {row["prompt_id"]: row for row in first_rows}
    second = {row["prompt_id"]: row for row in second_rows}
    winners, losers, dropped = [], [], Counter()
    for prompt_id in sorted(first.keys() & second.keys()):
        verdict = verdicts.get(prompt_id)
        winner = verdict.winner if verdict is not None else None
        if winner is None:
            if ties != "keep" or verdict is None:
                dropped["judge_tie" if verdict is not None else "judge_missing"] += 1
                continue
            winner = "first"
        good, bad = (first, second) if winner == "first" else (second, first)
        winners.append(good[prompt_id])
        losers.append(bad[prompt_id])
    return winners, losers, dropped


def build_sft(chosen_rows: list[dict], rules: PairsConfig = PairsConfig(), reasoning_field: bool = False) -> PairBuild:
    """SFT examples from the chosen responses alone (the SFT baseline), in TRL's conversational
    prompt/completion form."""
    build = PairBuild(pairs=[], prompts=len(chosen_rows))
    for row in sorted(chosen_rows, key=lambda r: r["prompt_id"]):
        if rules.drop_empty_chosen and not row["response"].strip():
            build.dropped["empty_chosen"] += 1
            continue
        if rules.drop_truncated_chosen and _truncated(row):
            build.dropped["truncated_chosen"] += 1
            continue
        build.pairs.append({
            "prompt_id": row["prompt_id"],
            "prompt": row["messages"],
            "completion": [assistant_message(row, rules, reasoning_field)],
            "prompt_tokens": row["prompt_tokens"],
            "chosen_tokens": row["completion_tokens"],
            "rejected_tokens": 0,
        })
    return build
