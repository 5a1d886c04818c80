"""Stage: merge detection shards into Wu et al.'s score file, a ranked summary and
concentration metrics; or, with `detection.scores_file`, the same from a published score file."""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.rundir import RunDir


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from transformers import AutoConfig

    from retmask.detection import write_score_summary, write_scores
    from retmask.heads import read_score_file

    model_config = AutoConfig.from_pretrained(cfg.synthesis_source().path)  # the detected model's shape
    shape = (model_config.num_hidden_layers, model_config.num_attention_heads)
    out = run.stage_dir("merge_scores")
    if cfg.detection.scores_file:
        published = read_score_file(cfg.detection.scores_file, *shape)
        tests = max(map(len, published.values()))
        write_score_summary(published, tests, tests, cfg.selection.tau, out, source=cfg.detection.scores_file)
    else:
        write_scores(run.finished_rows("detect"), *shape, cfg.selection.tau, out)
