"""Stage: sample responses for one contiguous slice of the prompts, from the normal synthesis
model (chosen) or the strategy's rejected source (the ablated model, or a smaller model), with the
same sampling settings for both. The synthesis model is the trained model unless `synthesis_model`
is set (then the rejected side is that model's masked twin).

Rows are appended a batch at a time and every prompt is seeded by its place in the prompt list
and by the stage, so a restarted shard keeps its finished batches, regenerates only the rest, and
ends with the rows an uninterrupted run writes (none lost, none twice), while chosen and rejected
are independent samples even where the two models agree.
"""
from __future__ import annotations

import dataclasses
import hashlib

from jobs.stages.mask import masked_model_dir
from jobs.stages.prompts import engine_context, shard_prompts
from retmask.config import ExperimentConfig
from retmask.io import fingerprint, write_jsonl
from retmask.rows import RowFile
from retmask.rundir import RunDir
from retmask.synthesis_config import model_sampling_defaults


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


def check_row_fingerprints(rows: list[dict], expected: str | None, where) -> str | None:
    """Rows of one stage must all come from one model and sampling (`expected`, when known): a shard
    requeued under a changed config, or queued twice, would otherwise mix two experiments."""
    found = sorted({str(row.get("fingerprint")) for row in rows})
    if len(found) > 1 or (expected and found and found != [expected]):
        wanted = f"; this run's is {expected}" if expected else ""
        raise ValueError(f"{where}: rows made under different models or sampling settings (fingerprints "
                         f"{', '.join(found)}{wanted}); move the stage's outputs aside (or resubmit with --force) "
                         "and synthesize it again")
    return found[0] if found else None


def synthesize(cfg: ExperimentConfig, run: RunDir, shard: int, stage: str, model_path: str) -> None:
    from retmask.backends import make_backend, split_reasoning

    s = cfg.synthesis
    mine, first_index = shard_prompts(cfg, run, shard)
    batches = [mine[i:i + s.batch_size] for i in range(0, len(mine), s.batch_size)]
    rows_file = RowFile(run.shard_file(stage, shard), guard=run.write_guard(stage, shard))
    rows = rows_file.existing()
    done = _complete_batches(rows, batches)
    kept_ids = {p.prompt_id for batch in batches[:done] for p in batch}
    if len(kept_ids) != len(rows):  # rows of a batch cut short: drop them, that batch is regenerated
        rows = [row for row in rows if row["prompt_id"] in kept_ids]
        write_jsonl(rows_file.path, rows)
    # Rows carry what made them: a restarted shard continues only rows of its own model and sampling.
    sampling = s.sampling.resolved(model_sampling_defaults(model_path))
    row_print = fingerprint({"model": model_path, "sampling": dataclasses.asdict(sampling)})
    check_row_fingerprints(rows, row_print, rows_file.path)
    progress = run.progress_reporter(stage, shard, "rows", len(mine), done=len(rows))
    if done == len(batches):
        return
    backend = make_backend(s.backend, model_path, cfg.synthesis_source().dtype, s.batch_size, s.tensor_parallel_size,
                           s.enable_thinking, engine_context(cfg))
    for number in range(done, len(batches)):
        batch = batches[number]
        seeds = prompt_seeds(s.sampling.seed, stage, first_index + number * s.batch_size, len(batch))
        outputs = backend.generate([p.messages for p in batch], sampling, seeds)
        new_rows = []
        for prompt, out in zip(batch, outputs):
            response, reasoning, finished = split_reasoning(out.text, backend.opens_reasoning)
            new_rows.append({
                "prompt_id": prompt.prompt_id,
                "messages": prompt.messages,
                "response": response,
                "reasoning": reasoning,
                "reasoning_finished": finished,
                "finish_reason": out.finish_reason,
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens,
                "fingerprint": row_print,
            })
        rows_file.append(new_rows)
        progress.advance(len(new_rows), tokens=sum(out.completion_tokens for out in outputs))


def run_chosen(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    synthesize(cfg, run, shard, "synthesize_chosen", cfg.synthesis_source().path)


def run_rejected(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.strategies import get_strategy

    source = get_strategy(cfg.strategy).rejected_from
    paths = {"masked": lambda: str(masked_model_dir(run)), "rejected_model": lambda: cfg.rejected_model.path,
             "normal": lambda: cfg.synthesis_source().path}  # normal: a second sample, ranked by a judge
    path = paths[source]()
    synthesize(cfg, run, shard, "synthesize_rejected", path)
