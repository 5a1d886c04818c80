"""The RetMask stage graph: what each stage depends on and which config decides its output.

A stage's fingerprint hashes its config sections and its dependencies' fingerprints, so a
changed key reruns the stages that read it and everything downstream, and nothing else.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from retmask.config import ExperimentConfig
from retmask.io import fingerprint


@dataclass(frozen=True)
class Stage:
    name: str
    entry: str  # "module:function", called as function(cfg, run_dir, shard)
    depends: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    shards: Callable[[ExperimentConfig], int] = lambda cfg: 1

    def function(self) -> Callable:
        module, name = self.entry.split(":")
        return getattr(importlib.import_module(module), name)


def build_stages(cfg: ExperimentConfig) -> list[Stage]:
    """Stages in an order that respects dependencies."""
    toy = ("toy_model",) if cfg.toy_model is not None else ()
    stages = []
    if toy:
        stages.append(Stage("toy_model", "jobs.toy_model:run", sections=("toy_model",)))
    stages += [
        Stage("detect", "jobs.detect:run", toy, ("model", "detection"), lambda c: c.detection.shards),
        Stage("merge_scores", "jobs.merge_scores:run", ("detect",)),
        Stage("select_heads", "jobs.select_heads:run", ("merge_scores",), ("selection", "strategy")),
        Stage("mask", "jobs.mask:run", ("select_heads",)),
        Stage("synthesize_chosen", "jobs.synthesize:run_chosen", toy, ("model", "synthesis"),
              lambda c: c.synthesis.shards),
        Stage("synthesize_rejected", "jobs.synthesize:run_rejected", ("mask",), ("model", "synthesis"),
              lambda c: c.synthesis.shards),
        Stage("pairs", "jobs.pairs:run", ("synthesize_chosen", "synthesize_rejected"), ("pairs",)),
        Stage("train", "jobs.train:run", ("pairs",), ("train",)),
        Stage("evaluate", "jobs.evaluate:run", ("train", "merge_scores", "select_heads"), ("evaluation",)),
        Stage("report", "jobs.report:run", ("evaluate", "pairs", "train")),
    ]
    return stages


def stage_fingerprints(cfg: ExperimentConfig, stages: list[Stage]) -> dict[str, str]:
    data = cfg.to_dict()
    prints: dict[str, str] = {}
    for stage in stages:
        prints[stage.name] = fingerprint({
            "stage": stage.name,
            "shards": stage.shards(cfg),
            "config": {section: data[section] for section in stage.sections},
            "upstream": [prints[name] for name in stage.depends],
        })
    return prints


def stage_by_name(cfg: ExperimentConfig, name: str) -> Stage:
    for stage in build_stages(cfg):
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r}; stages are {', '.join(s.name for s in build_stages(cfg))}")
