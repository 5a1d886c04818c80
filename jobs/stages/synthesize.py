"""Stage: sample responses for one contiguous slice of the prompts, from the normal synthesis
model (chosen) or the strategy's rejected source (the ablated model, or a smaller model), with the
same sampling settings for both. The synthesis model is the trained model unless `synthesis_model`
is set (then the rejected side is that model's masked twin).

Every prompt is seeded by its place in the prompt list and by the stage, so chosen and rejected
are independent samples even where the two models agree, and a restarted shard ends with the rows
an uninterrupted run writes (none lost, none twice). vLLM is given the shard's whole prompt list
and its rows are written as they finish (a restart redoes only the prompts without a row); the HF
backend samples in batches of prompts of like length (less padding), each batch sharing one random
stream and written whole (a restart keeps the finished batches).
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


def length_batches(prompts: list, size: int) -> list[list[int]]:
    """The HF backend's batches: prompt positions, longest prompts first (an out-of-memory shows in
    the first batch), `size` at a time. Fixed by the prompts alone, so a restart forms the same ones."""
    def length(i: int) -> int:
        return sum(len(str(message.get("content") or "")) for message in prompts[i].messages)

    order = sorted(range(len(prompts)), key=lambda i: (-length(i), i))
    return [order[i:i + size] for i in range(0, len(order), size)]


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


def _row(prompt, out, opens_reasoning: bool, row_print: str) -> dict:
    from retmask.backends import split_reasoning

    response, reasoning, finished = split_reasoning(out.text, opens_reasoning)
    return {"prompt_id": prompt.prompt_id, "messages": prompt.messages, "response": response, "reasoning": reasoning,
            "reasoning_finished": finished, "finish_reason": out.finish_reason, "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens, "fingerprint": row_print}


def synthesize(cfg: ExperimentConfig, run: RunDir, shard: int, stage: str, model_path: str, backend=None) -> None:
    """`backend`: an engine already started on `model_path` (a benchmark's), else one is made."""
    from retmask.backends import make_backend

    s = cfg.synthesis
    mine, first_index = shard_prompts(cfg, run, shard)
    seeds = prompt_seeds(s.sampling.seed, stage, first_index, len(mine))
    rows_file = RowFile(run.shard_file(stage, shard), guard=run.write_guard(stage, shard))
    rows = rows_file.existing()
    streamed = s.backend == "vllm"  # the whole shard in the engine, rows written as they finish
    if streamed:
        ids = {prompt.prompt_id for prompt in mine}
        kept = [row for row in rows if row["prompt_id"] in ids]
    else:  # HF batches share a random stream: a batch cut short is regenerated whole
        positions = length_batches(mine, s.batch_size)
        batches = [[mine[i] for i in batch] for batch in positions]
        done_batches = _complete_batches(rows, batches)
        kept_ids = {p.prompt_id for batch in batches[:done_batches] for p in batch}
        kept = [row for row in rows if row["prompt_id"] in kept_ids]
    if len(kept) != len(rows):
        write_jsonl(rows_file.path, kept)
    # Rows carry what made them: a restarted shard continues only rows of its own model and sampling.
    sampling = s.sampling.resolved(model_sampling_defaults(model_path))
    row_print = fingerprint({"model": model_path, "sampling": dataclasses.asdict(sampling)})
    check_row_fingerprints(kept, row_print, rows_file.path)
    have = {row["prompt_id"] for row in kept}
    todo = [i for i, prompt in enumerate(mine) if prompt.prompt_id not in have]
    progress = run.progress_reporter(stage, shard, "rows", len(mine), done=len(kept))
    if not todo:
        return
    backend = backend or make_backend(s.backend, model_path, cfg.synthesis_source().dtype, s.batch_size,
                                      s.tensor_parallel_size, s.enable_thinking, engine_context(cfg))
    if streamed:
        finished = backend.stream([mine[i].messages for i in todo], sampling, [seeds[i] for i in todo])
        for outputs in _flushes(finished, FLUSH_ROWS, FLUSH_SECONDS):
            rows_file.append([_row(mine[todo[j]], out, backend.opens_reasoning, row_print) for j, out in outputs])
            progress.advance(len(outputs), tokens=sum(out.completion_tokens for _, out in outputs))
        return
    for batch_positions, batch in zip(positions[done_batches:], batches[done_batches:]):
        outputs = backend.generate([p.messages for p in batch], sampling, [seeds[i] for i in batch_positions])
        rows_file.append([_row(prompt, out, backend.opens_reasoning, row_print) for prompt, out in zip(batch, outputs)])
        progress.advance(len(outputs), tokens=sum(out.completion_tokens for out in outputs))


# A streamed shard writes its finished rows in groups: at most this many, or this old.
FLUSH_ROWS, FLUSH_SECONDS = 64, 2.0


def _flushes(finished, rows: int, seconds: float):
    """(index, output) pairs as they finish, grouped for writing: a group closes at `rows` rows
    or when its first row is `seconds` old (progress and a kill lose little either way)."""
    import time

    group, opened = [], 0.0
    for item in finished:
        if not group:
            opened = time.monotonic()
        group.append(item)
        if len(group) >= rows or time.monotonic() - opened >= seconds:
            yield group
            group = []
    if group:
        yield group


def run_chosen(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    synthesize(cfg, run, shard, "synthesize_chosen", cfg.synthesis_source().path)


def run_rejected(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.strategies import get_strategy

    source = get_strategy(cfg.strategy).rejected_from
    paths = {"masked": lambda: str(masked_model_dir(run)), "rejected_model": lambda: cfg.rejected_model.path,
             "normal": lambda: cfg.synthesis_source().path}  # normal: a second sample, ranked by a judge
    path = paths[source]()
    synthesize(cfg, run, shard, "synthesize_rejected", path)
