"""Stage: join chosen and rejected rows into DPO pairs, with drop counts and statistics."""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.io import atomic_directory, write_json, write_jsonl
from retmask.rows import read_shards
from retmask.rundir import RunDir


def pairs_dir(run: RunDir):
    return run.stage_dir("pairs")


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    import datasets

    from retmask.pairs import build_pairs

    def rows(stage: str) -> list[dict]:
        return read_shards(sorted((run.stage_dir(stage) / "shards").glob("*.jsonl")))

    build = build_pairs(rows("synthesize_chosen"), rows("synthesize_rejected"),
                        cfg.pairs.drop_empty, cfg.pairs.drop_identical)
    if not build.pairs:
        raise ValueError(f"no pairs survived the filters (dropped: {dict(build.dropped)}); "
                         "check the synthesis outputs")
    out = pairs_dir(run)
    write_jsonl(out / "pairs.jsonl", build.pairs)
    columns = ["prompt_id", "prompt", "chosen", "rejected"]
    dataset = datasets.Dataset.from_list([{k: p[k] for k in columns} for p in build.pairs])
    with atomic_directory(out / "dataset") as tmp:
        dataset.save_to_disk(str(tmp))
    write_json(out / "statistics.json", build.statistics())
