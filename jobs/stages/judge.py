"""Stage (win-lose-pair): the judge scores both samples of every prompt; `pairs` then takes the
higher-rated one as chosen. Scores are kept per prompt, so the ranking can be inspected.

An array over the prompts both sides sampled (sorted, contiguous slices): each shard appends its
verdicts a batch at a time, so a killed shard resumes at the first prompt it has no verdict for,
and rows made under another judge are refused rather than mixed.
"""
from __future__ import annotations

from jobs.stages.pairs import sample_rows
from jobs.stages.prompts import prepared_prompts
from retmask.config import ExperimentConfig
from retmask.io import fingerprint
from retmask.rows import RowFile
from retmask.rundir import RunDir, shard_slice


def judge_shards(cfg: ExperimentConfig) -> int:
    return cfg.judge.shards or cfg.synthesis.shards


def read_verdicts(run: RunDir) -> dict:
    from retmask.judging import Verdict

    return {row["prompt_id"]: Verdict(row["prompt_id"], row["first"], row["second"])
            for row in run.finished_rows("judge")}


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    import dataclasses

    from jobs.stages.synthesize import check_row_fingerprints
    from retmask.judging import make_judge

    first = {row["prompt_id"]: row for row in sample_rows(run, "synthesize_chosen")}
    second = {row["prompt_id"]: row for row in sample_rows(run, "synthesize_rejected")}
    both = sorted(first.keys() & second.keys())
    mine = [both[i] for i in shard_slice(len(both), judge_shards(cfg), shard)]
    rows_file = RowFile(run.shard_file("judge", shard), guard=run.write_guard("judge", shard))
    rows = rows_file.existing()
    row_print = fingerprint(dataclasses.asdict(cfg.judge))
    check_row_fingerprints(rows, row_print, rows_file.path)
    judged = {row["prompt_id"] for row in rows}
    todo = [prompt_id for prompt_id in mine if prompt_id not in judged]
    progress = run.progress_reporter("judge", shard, "prompts", len(mine), done=len(mine) - len(todo))
    if not todo:
        return
    prepared = prepared_prompts(run)
    references = dict(zip(prepared["prompt_id"], prepared["reference"]))
    judge = make_judge(cfg.judge)
    size = cfg.judge.batch_size
    for start in range(0, len(todo), size):
        batch = todo[start:start + size]
        items = [(side[i]["messages"], side[i]["response"], references.get(i)) for side in (first, second)
                 for i in batch]
        scores = judge.score(items)  # both samples of a batch in one call: the engine stays full
        rows_file.append([{"prompt_id": i, "first": a, "second": b, "fingerprint": row_print}
                          for i, a, b in zip(batch, scores[:len(batch)], scores[len(batch):])])
        progress.advance(len(batch))
