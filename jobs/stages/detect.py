"""Stage: retrieval-head detection over one contiguous slice of the NIAH instances, on the
synthesis model (the trained model itself unless `synthesis_model` is set): its heads are masked.

Records are appended per instance, so a restarted shard continues where it stopped.
"""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.rows import RowFile
from retmask.rundir import RunDir, shard_slice


def max_positions(model_path: str) -> int | None:
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)


def detection_instances(cfg: ExperimentConfig, tokenizer, model_path: str):
    """The detection instances in the tokens of the checkpoint at `model_path` (`tokenizer`'s)."""
    from retmask.niah import build_instances, check_within_positions

    d = cfg.detection
    instances = build_instances(tokenizer, d.haystack, d.needles, d.lengths, d.depths, d.template)
    check_within_positions(instances, d.max_new_tokens, max_positions(model_path), "detection",
                           d.beyond_max_positions)
    return instances


def check_inputs(cfg: ExperimentConfig) -> int | None:
    """Build the NIAH instances once, before any job starts, so that an empty haystack or a needle
    longer than the context is one error now rather than a failed shard later. Returns how many
    instances there are, or None while the model does not exist yet (a toy model not yet trained)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from retmask.config import ConfigError

    path = cfg.synthesis_source().path
    if not (Path(path) / "config.json").is_file():
        return None
    count = len(detection_instances(cfg, AutoTokenizer.from_pretrained(path), path))
    if cfg.detection.scores_file:  # no detection job: the published file, against the model's shape
        from transformers import AutoConfig

        from retmask.heads import read_score_file

        shape = AutoConfig.from_pretrained(path)
        read_score_file(cfg.detection.scores_file, shape.num_hidden_layers, shape.num_attention_heads)
    elif cfg.detection.shards > count:  # the extra array tasks would start only to find no work
        raise ConfigError(f"detection.shards: {cfg.detection.shards} shards for {count} NIAH instances; give at "
                          f"most {count}")
    return count


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.detection import detect_instance
    from retmask.generation import load_model

    source = cfg.synthesis_source()
    model, tokenizer = load_model(source.path, source.dtype)
    instances = detection_instances(cfg, tokenizer, source.path)
    mine = [instances[i] for i in shard_slice(len(instances), cfg.detection.shards, shard)]
    rows = RowFile(run.shard_file("detect", shard), guard=run.write_guard("detect", shard))
    finished = {row["instance_id"] for row in rows.existing()}
    progress = run.progress_reporter("detect", shard, "instances", len(mine),
                                     done=sum(instance.instance_id in finished for instance in mine))
    for instance in mine:
        if instance.instance_id not in finished:
            rows.append([detect_instance(model, tokenizer, instance, cfg.detection.max_new_tokens,
                                         cfg.detection.rouge_threshold)])
            progress.advance()
