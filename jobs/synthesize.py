"""Stage: sample responses for one contiguous slice of the prompts, from the normal model
(chosen) or the strategy's rejected source (the ablated model, or a smaller model), with the
same sampling settings for both.

Rows are appended a batch at a time and every batch is seeded by its place in the prompt list,
so a restarted shard keeps its finished batches, regenerates only the rest, and ends with the
rows an uninterrupted run writes: none lost, none twice.
"""
from __future__ import annotations

import dataclasses

from jobs.mask import masked_model_dir
from retmask.config import ExperimentConfig
from retmask.io import fingerprint, write_jsonl
from retmask.rows import RowFile
from retmask.rundir import RunDir, shard_slice


def shard_prompts(cfg: ExperimentConfig, shard: int, tokenizer=None):
    from retmask.prompts import load_prompts

    s = cfg.synthesis
    prompts = load_prompts(s.prompts, s.prompt_format, s.prompt_column, s.turns, s.languages, s.drop_redacted,
                           s.drop_flagged, s.dedup, s.max_prompt_tokens, tokenizer, s.max_prompts).prompts
    indices = shard_slice(len(prompts), s.shards, shard)
    return [prompts[i] for i in indices], indices.start


def _complete_batches(rows: list[dict], batches: list[list]) -> int:
    """How many leading batches are fully written; rows beyond them are regenerated."""
    have = {row["prompt_id"] for row in rows}
    count = 0
    for batch in batches:
        if not all(prompt.prompt_id in have for prompt in batch):
            break
        count += 1
    return count


def synthesize(cfg: ExperimentConfig, run: RunDir, shard: int, stage: str, model_path: str) -> None:
    from transformers import AutoTokenizer

    from retmask.backends import make_backend, split_reasoning

    s = cfg.synthesis
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path) if s.max_prompt_tokens else None
    mine, first_index = shard_prompts(cfg, shard, tokenizer)
    batches = [mine[i:i + s.batch_size] for i in range(0, len(mine), s.batch_size)]
    rows_file = RowFile(run.shard_file(stage, shard))
    rows = rows_file.existing()
    done = _complete_batches(rows, batches)
    kept_ids = {p.prompt_id for batch in batches[:done] for p in batch}
    if len(kept_ids) != len(rows):  # rows of a batch cut short: drop them, that batch is regenerated
        write_jsonl(rows_file.path, [row for row in rows if row["prompt_id"] in kept_ids])
    if done == len(batches):
        return
    backend = make_backend(s.backend, model_path, cfg.model.dtype, s.batch_size, s.tensor_parallel_size,
                           s.enable_thinking)
    row_print = fingerprint({"model": model_path, "sampling": dataclasses.asdict(s.sampling)})
    for number in range(done, len(batches)):
        batch = batches[number]
        seed = s.sampling.seed * 1_000_003 + first_index + number * s.batch_size
        outputs = backend.generate([p.messages for p in batch], s.sampling, seed)
        new_rows = []
        for prompt, out in zip(batch, outputs):
            response, reasoning = split_reasoning(out.text)
            new_rows.append({
                "prompt_id": prompt.prompt_id,
                "messages": prompt.messages,
                "response": response,
                "reasoning": reasoning,
                "finish_reason": out.finish_reason,
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens,
                "fingerprint": row_print,
            })
        rows_file.append(new_rows)


def run_chosen(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    synthesize(cfg, run, shard, "synthesize_chosen", cfg.model.path)


def run_rejected(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.strategies import get_strategy

    source = get_strategy(cfg.strategy).rejected_from
    path = str(masked_model_dir(run)) if source == "masked" else cfg.rejected_model.path
    synthesize(cfg, run, shard, "synthesize_rejected", path)
