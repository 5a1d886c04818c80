"""Stage: sample responses for one contiguous slice of the prompts, from the normal model
(chosen) or the strategy's rejected source (the ablated model, or a smaller model), with the
same sampling settings for both.

Rows are appended a batch at a time and every prompt is seeded by its place in the prompt list
and by the stage, so a restarted shard keeps its finished batches, regenerates only the rest, and
ends with the rows an uninterrupted run writes (none lost, none twice), while chosen and rejected
are independent samples even where the two models agree.
"""
from __future__ import annotations

import dataclasses
import hashlib

from jobs.mask import masked_model_dir
from retmask.config import ExperimentConfig
from retmask.io import fingerprint, write_json, write_jsonl
from retmask.rows import RowFile
from retmask.rundir import RunDir, shard_slice


def load_synthesis_prompts(cfg: ExperimentConfig, tokenizer=None):
    """Every prompt of the synthesis set, filtered as the config says."""
    from retmask.prompts import load_prompts

    s = cfg.synthesis
    return load_prompts(s.prompts, s.prompt_format, s.prompt_column, s.turns, s.languages, s.drop_redacted,
                        s.drop_flagged, s.dedup, s.prompt_token_limit(), tokenizer, s.max_prompts)


def shard_prompts(cfg: ExperimentConfig, shard: int, tokenizer=None, run: RunDir | None = None):
    """This shard's prompts and the index of its first. Shard 0 records what the filters dropped."""
    s = cfg.synthesis
    loaded = load_synthesis_prompts(cfg, tokenizer)
    if run is not None and shard == 0:
        write_json(run.stage_dir("synthesize_chosen") / "prompt_filter.json",
                   {"prompts": len(loaded.prompts), "token_limit": s.prompt_token_limit(),
                    "dropped": dict(sorted(loaded.dropped.items()))})
    prompts = loaded.prompts
    indices = shard_slice(len(prompts), s.shards, shard)
    return [prompts[i] for i in indices], indices.start


def prompt_seeds(base_seed: int, stage: str, first_index: int, count: int) -> list[int]:
    """One seed per prompt, from (sampling seed, stage, prompt position): stable across restarts
    and batch sizes, and different for the chosen and rejected stages."""
    def seed(index: int) -> int:
        digest = hashlib.blake2b(f"{base_seed}:{stage}:{index}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") & 0x7FFFFFFF

    return [seed(first_index + i) for i in range(count)]


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
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
    mine, first_index = shard_prompts(cfg, shard, tokenizer, run if stage == "synthesize_chosen" else None)
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
                           s.enable_thinking, s.max_model_len)
    row_print = fingerprint({"model": model_path, "sampling": dataclasses.asdict(s.sampling)})
    for number in range(done, len(batches)):
        batch = batches[number]
        seeds = prompt_seeds(s.sampling.seed, stage, first_index + number * s.batch_size, len(batch))
        outputs = backend.generate([p.messages for p in batch], s.sampling, seeds)
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
    paths = {"masked": lambda: str(masked_model_dir(run)), "rejected_model": lambda: cfg.rejected_model.path,
             "normal": lambda: cfg.model.path}  # normal: a second sample, ranked by a judge (win-lose-pair)
    path = paths[source]()
    synthesize(cfg, run, shard, "synthesize_rejected", path)
