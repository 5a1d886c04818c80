"""Stage: sample responses for one contiguous slice of the prompts, from the normal model
(chosen) or the ablated model (rejected), with the same sampling settings for both.

Rows are appended a batch at a time and each batch is seeded by its position in the prompt list,
so a restarted shard regenerates only the batches it lacks and ends with the rows an
uninterrupted run writes.
"""
from __future__ import annotations

from jobs.mask import masked_model_dir
from retmask.config import ExperimentConfig
from retmask.io import fingerprint, write_jsonl
from retmask.rows import RowFile
from retmask.rundir import RunDir, shard_slice


def shard_path(run: RunDir, stage: str, shard: int):
    return run.stage_dir(stage) / "shards" / f"{shard:05d}.jsonl"


def _complete_batches(rows: list[dict], batches: list[list]) -> int:
    """How many leading batches are fully present; rows beyond them are regenerated."""
    have = {row["prompt_id"] for row in rows}
    count = 0
    for batch in batches:
        if not all(prompt.prompt_id in have for prompt in batch):
            break
        count += 1
    return count


def synthesize(cfg: ExperimentConfig, run: RunDir, shard: int, stage: str, model_path: str) -> None:
    from retmask.generation import generate, load_model
    from retmask.prompts import load_prompts

    s = cfg.synthesis
    prompts = load_prompts(s.prompts, s.prompt_column, s.max_prompts)
    indices = shard_slice(len(prompts), s.shards, shard)
    mine = [prompts[i] for i in indices]
    batches = [mine[i:i + s.batch_size] for i in range(0, len(mine), s.batch_size)]
    rows_file = RowFile(shard_path(run, stage, shard))
    rows = rows_file.existing()
    done = _complete_batches(rows, batches)
    kept_ids = {p.prompt_id for batch in batches[:done] for p in batch}
    if len(kept_ids) != len(rows):  # drop rows of a batch cut short, then regenerate that batch
        rows = [row for row in rows if row["prompt_id"] in kept_ids]
        write_jsonl(rows_file.path, rows)
    if done == len(batches):
        return
    model, tokenizer = load_model(model_path, cfg.model.dtype)
    sampling = s.sampling
    row_print = fingerprint({"model": model_path, "sampling": sampling.__dict__})
    for number in range(done, len(batches)):
        batch = batches[number]
        first_index = indices.start + number * s.batch_size
        outputs = generate(model, tokenizer, [p.messages for p in batch], max_new_tokens=sampling.max_new_tokens,
                           batch_size=len(batch), do_sample=True, temperature=sampling.temperature,
                           top_p=sampling.top_p, seed=sampling.seed * 1_000_003 + first_index)
        rows_file.append([{
            "prompt_id": prompt.prompt_id,
            "messages": prompt.messages,
            "response": out.text,
            "reasoning": None,
            "finish_reason": out.finish_reason,
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "fingerprint": row_print,
        } for prompt, out in zip(batch, outputs)])


def run_chosen(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    synthesize(cfg, run, shard, "synthesize_chosen", cfg.model.path)


def run_rejected(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    synthesize(cfg, run, shard, "synthesize_rejected", str(masked_model_dir(run)))
