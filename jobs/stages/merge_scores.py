"""Stage: merge detection shards into Wu et al.'s score file, a ranked summary and
concentration metrics."""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.rundir import RunDir


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from transformers import AutoConfig

    from retmask.detection import write_scores

    model_config = AutoConfig.from_pretrained(cfg.synthesis_source().path)  # the detected model's shape
    write_scores(run.finished_rows("detect"), model_config.num_hidden_layers,
                 model_config.num_attention_heads, cfg.selection.tau, run.stage_dir("merge_scores"))
