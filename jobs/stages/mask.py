"""Stage: the ablated synthesis model (the trained model itself unless `synthesis_model` is set)
as a checkpoint that engines load from disk."""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.io import read_json, write_json
from retmask.rundir import RunDir


def masked_model_dir(run: RunDir):
    return run.stage_dir("mask") / "model"


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.masking import (
        heads_from_names,
        mask_fingerprint,
        write_masked_checkpoint,
    )

    heads = heads_from_names(read_json(run.stage_dir("select_heads") / "heads.json")["heads"])
    source = cfg.synthesis_source().path
    write_masked_checkpoint(source, heads, masked_model_dir(run))
    write_json(run.stage_dir("mask") / "mask.json", {"model": source, "heads": len(heads),
                                                     "mask_fingerprint": mask_fingerprint(source, heads)})
