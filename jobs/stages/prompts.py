"""Stage: the synthesis prompts, loaded, filtered, de-duplicated and token-counted once for the
whole run, saved as an Arrow dataset that each synthesis task memory-maps and slices."""
from __future__ import annotations

import os
from pathlib import Path

from retmask.config import ExperimentConfig
from retmask.io import atomic_directory, read_json, write_json
from retmask.rundir import RunDir, shard_slice

STAGE = "prepare_prompts"
# The keys that decide the prompt set: a changed sampling temperature does not prepare it again.
SECTIONS = ("model.path", "synthesis.prompts", "synthesis.prompt_format", "synthesis.prompt_column", "synthesis.turns",
            "synthesis.languages", "synthesis.drop_redacted", "synthesis.drop_flagged", "synthesis.dedup",
            "synthesis.max_prompt_tokens", "synthesis.max_model_len", "synthesis.sampling.max_new_tokens",
            "synthesis.max_prompts")


def sampling_models(cfg: ExperimentConfig) -> list[str]:
    """The checkpoints whose engines sample the prompts (a masked twin serves what its original does)."""
    from retmask.strategies import get_strategy

    other = get_strategy(cfg.strategy).rejected_from == "rejected_model"
    return [cfg.synthesis_source().path] + ([cfg.rejected_model.path] if other else [])


def engine_context(cfg: ExperimentConfig) -> int:
    """The synthesis engines' context: synthesis.max_model_len, or (0) the positions of the model
    whose samples are chosen (check_context has refused one a sampling model cannot serve)."""
    from retmask.model_positions import checkpoint_positions

    if cfg.synthesis.max_model_len:
        return cfg.synthesis.max_model_len
    positions = checkpoint_positions(cfg.synthesis_source().path)
    if not positions:
        raise ValueError(f"synthesis.max_model_len: 0 takes the model's own context, but "
                         f"{cfg.synthesis_source().path} does not say how many positions it has; give max_model_len")
    return positions


def check_context(cfg: ExperimentConfig) -> None:
    """An engine context beyond a sampling model's positions (vLLM refuses to start), or one without
    room for the prompt, is one error before any job."""
    from retmask.config import ConfigError
    from retmask.model_positions import checkpoint_positions

    s = cfg.synthesis
    context = engine_context(cfg)
    for path in sampling_models(cfg):
        positions = checkpoint_positions(path)
        if positions and context > positions:
            given = f"{s.max_model_len} tokens" if s.max_model_len else f"0, the chosen model's {context} positions"
            raise ConfigError(f"synthesis.max_model_len: {given}, but {path} has {positions} positions; give "
                              f"at most {positions}" + ("" if s.max_model_len else " so that every sampling model "
                                                        "serves every prompt kept"))
    if context <= s.sampling.max_new_tokens:
        raise ConfigError(f"synthesis.sampling.max_new_tokens: {s.sampling.max_new_tokens} leaves no room for a "
                          f"prompt in the engines' context of {context} tokens; lower it")


def filters(cfg: ExperimentConfig):
    from retmask.prompts import PromptFilters

    s = cfg.synthesis
    return PromptFilters(s.prompt_format, s.prompt_column, s.turns, tuple(s.languages), s.drop_redacted,
                         s.drop_flagged, s.dedup, s.prompt_token_limit(engine_context(cfg)), s.max_prompts)


def processes() -> int:
    """The CPUs this task was given by its scheduler, else this machine's."""
    from jobs.schedulers.base import task_cpus  # no submitit: the vLLM test environment has none

    return task_cpus() or len(os.sched_getaffinity(0))


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.prompts import prepare_prompts

    # counted in the tokens of the model whose engine samples them
    chosen = filters(cfg)
    prepared, counts = prepare_prompts(cfg.synthesis.prompts, chosen, cfg.synthesis_source().path, processes())
    out = run.stage_dir(STAGE)
    with atomic_directory(out / "dataset") as tmp:
        prepared.save_to_disk(str(tmp))
    write_json(out / "statistics.json", {"rows": counts.rows, "prompts": len(prepared),
                                         "token_limit": chosen.token_limit,
                                         "dropped": dict(sorted(counts.dropped.items()))})


def source_rows(path: Path) -> int:
    """Rows of a prompt source, read from its metadata where it has some (parquet, saved datasets)."""
    if path.is_dir():
        import datasets

        return len(datasets.load_from_disk(str(path)))
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if path.suffix.lower() == ".json":
        import json

        data = json.loads(path.read_text() or "[]")
        return len(data) if isinstance(data, list) else 1
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def check_inputs(cfg: ExperimentConfig) -> int | None:
    """Before any job starts: an empty prompt source, or more synthesis shards than there can be
    prompts, is one error now rather than failed or idle tasks later. Returns the source's rows
    (None when the run synthesizes nothing, or when a toy model not trained yet will write them)."""
    from pathlib import Path

    from retmask.config import ConfigError

    s = cfg.synthesis
    if not s.prompts:
        return None
    path, model_dir = Path(s.prompts), Path(cfg.model.path)
    if not path.exists() and path.is_relative_to(model_dir) and not (model_dir / "config.json").is_file():
        return None  # a toy model's own prompts: its stage writes them with the model it trains
    if all((Path(model) / "config.json").is_file() for model in sampling_models(cfg)):
        check_context(cfg)
    if not path.exists():
        raise ConfigError(f"synthesis.prompts: {path} does not exist")
    rows = source_rows(path)
    if rows == 0:
        raise ConfigError(f"synthesis.prompts: {path} holds no rows; give a prompt set (jsonl, parquet or a saved "
                          "datasets directory)")
    most = min(rows, s.max_prompts) if s.max_prompts else rows
    if s.shards > most:
        raise ConfigError(f"synthesis.shards: {s.shards} shards for at most {most} prompts ({rows} rows"
                          f"{f', max_prompts {s.max_prompts}' if s.max_prompts else ''}); use at most {most} shards")
    return rows


def prepared_prompts(run: RunDir):
    """The run's prepared prompts, memory-mapped (nothing is read until rows are asked for)."""
    import datasets

    return datasets.load_from_disk(str(run.stage_dir(STAGE) / "dataset"))


def shard_prompts(cfg: ExperimentConfig, run: RunDir, shard: int):
    """This shard's prompts and the index of its first: a slice of the prepared set."""
    from retmask.prompts import prompts_of

    prepared = prepared_prompts(run)
    indices = shard_slice(len(prepared), cfg.synthesis.shards, shard)
    return prompts_of(prepared.select(indices)), indices.start


def prompt_statistics(run: RunDir) -> dict | None:
    path = run.stage_dir(STAGE) / "statistics.json"
    return read_json(path) if path.is_file() else None
