"""Stage (win-lose-pair): the judge scores both samples of every prompt; `pairs` then takes the
higher-rated one as chosen. Scores are kept per prompt, so the ranking can be inspected."""
from __future__ import annotations

from jobs.stages.pairs import sample_rows
from jobs.stages.prompts import prepared_prompts
from retmask.config import ExperimentConfig
from retmask.io import read_jsonl, write_jsonl
from retmask.rundir import RunDir


def verdicts_path(run: RunDir):
    return run.stage_dir("judge") / "verdicts.jsonl"


def read_verdicts(run: RunDir) -> dict:
    from retmask.judging import Verdict

    return {row["prompt_id"]: Verdict(row["prompt_id"], row["first"], row["second"])
            for row in read_jsonl(verdicts_path(run))}


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.judging import make_judge

    first = {row["prompt_id"]: row for row in sample_rows(run, "synthesize_chosen")}
    second = {row["prompt_id"]: row for row in sample_rows(run, "synthesize_rejected")}
    both = sorted(first.keys() & second.keys())
    prepared = prepared_prompts(run)
    references = dict(zip(prepared["prompt_id"], prepared["reference"]))
    judge = make_judge(cfg.judge)
    scores = {}
    for side, rows in (("first", first), ("second", second)):
        items = [(rows[i]["messages"], rows[i]["response"], references.get(i)) for i in both]
        scores[side] = judge.score(items)
    write_jsonl(verdicts_path(run), [{"prompt_id": i, "first": a, "second": b}
                                     for i, a, b in zip(both, scores["first"], scores["second"])])
