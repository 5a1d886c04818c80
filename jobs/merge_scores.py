"""Stage: merge detection shards into Wu et al.'s score file, a ranked summary and
concentration metrics."""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.io import write_json
from retmask.rows import read_shards
from retmask.rundir import RunDir


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from transformers import AutoConfig

    from retmask.detection import merge_records
    from retmask.heads import concentration, mean_scores, ranked

    model_config = AutoConfig.from_pretrained(cfg.model.path)
    records = read_shards(sorted((run.stage_dir("detect") / "shards").glob("*.jsonl")))
    per_instance = merge_records(records, model_config.num_hidden_layers, model_config.num_attention_heads)
    scores = mean_scores(per_instance)
    out = run.stage_dir("merge_scores")
    write_json(out / "retrieval_scores.json", per_instance)
    write_json(out / "summary.json", {
        "instances": len(records),
        "kept": sum(r["kept"] for r in records),
        "ranked": [[name, round(score, 6)] for name, score in ranked(scores)],
        "concentration": concentration(scores, cfg.selection.tau),
    })
