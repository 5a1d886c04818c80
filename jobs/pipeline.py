"""The RetMask stage graph: what each stage depends on and which config decides its output.

A stage's fingerprint hashes its config sections and its dependencies' fingerprints, so a
changed key reruns the stages that read it and everything downstream, and nothing else.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from jobs.stages.evaluate import untrained_model_count
from jobs.stages.judge import judge_shards
from jobs.stages.prompts import SECTIONS as PROMPT_SECTIONS
from retmask.helmet_judge import SCRIPTS as JUDGE_SCRIPTS
from retmask.config import ExperimentConfig
from retmask.io import fingerprint
from retmask.strategies import CONTROL_RULES, get_strategy


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
    """Stages of the config's strategy, in an order that respects dependencies."""
    strategy = get_strategy(cfg.strategy)
    toy = ("toy_model",) if cfg.toy_model is not None else ()
    # The model detected, masked and sampled is the config section `synthesizer`: `model` itself
    # unless a synthesis model is set, so runs without one keep their fingerprints. Stages that also
    # read the trained model add `trained`, empty without a synthesis model (`model` is upstream then).
    synthesizer = "synthesis_model" if cfg.cross_model else "model"
    trained = ("model",) if cfg.cross_model else ()
    stages = []
    if toy:
        stages.append(Stage("toy_model", "jobs.stages.toy_model:run", sections=("toy_model",)))
    if cfg.detection.scores_file:  # published scores in place of detection (the section names the file)
        stages.append(Stage("merge_scores", "jobs.stages.merge_scores:run", toy, (synthesizer, "detection", "selection")))
    else:
        stages += [
            Stage("detect", "jobs.stages.detect:run", toy, (synthesizer, "detection"), lambda c: c.detection.shards),
            Stage("merge_scores", "jobs.stages.merge_scores:run", ("detect",), ("selection",)),  # its summary counts heads >= tau
        ]
    stages += [
        # control_seed decides only a control strategy's draw: other strategies share their mask.
        Stage("select_heads", "jobs.stages.select_heads:run", ("merge_scores",),
              ("selection", "strategy") + (("control_seed",) if strategy.mask_rule in CONTROL_RULES else ())),
    ]
    if strategy.mask_rule:
        stages.append(Stage("mask", "jobs.stages.mask:run", ("select_heads",)))
    stages += [
        # Prompts are token-counted with the synthesis model's tokenizer, the one its engine uses.
        Stage("prepare_prompts", "jobs.stages.prompts:run", toy,
              tuple(f"{synthesizer}.path" if key == "model.path" else key for key in PROMPT_SECTIONS)),
        Stage("synthesize_chosen", "jobs.stages.synthesize:run_chosen", ("prepare_prompts",),
              (synthesizer, "synthesis"), lambda c: c.synthesis.shards),
    ]
    if strategy.rejected_from != "none":
        rejected_after = ("prepare_prompts",) + (("mask",) if strategy.rejected_from == "masked" else ())
        # rejected_model decides the samples of the strategies that sample it, and only theirs
        other_model = ("rejected_model",) if strategy.rejected_from == "rejected_model" else ()
        stages.append(Stage("synthesize_rejected", "jobs.stages.synthesize:run_rejected", rejected_after,
                            (synthesizer, *other_model, "synthesis", "strategy"), lambda c: c.synthesis.shards))
    samples = tuple(s.name for s in stages if s.name.startswith("synthesize_"))
    if strategy.judged:
        stages.append(Stage("judge", "jobs.stages.judge:run", samples, ("judge",), judge_shards))
        samples += ("judge",)
    stages += [
        # pairs renders reasoning as the trained model's chat template reads it back
        Stage("pairs", "jobs.stages.pairs:run", samples, ("pairs",) + tuple(f"{m}.path" for m in trained)),
        Stage("train", "jobs.stages.train:run", ("pairs",), ("train", "strategy") + trained),
        # The untrained models' NIAH depends on neither strategy nor training: runs share it.
        Stage("evaluate_base", "jobs.stages.evaluate:run_base", ("merge_scores",),
              ("evaluation", "selection") + trained, untrained_model_count),
        Stage("evaluate", "jobs.stages.evaluate:run", ("train", "merge_scores", "select_heads", "evaluate_base"),
              ("evaluation",)),
    ]
    report_after = ("evaluate", "pairs", "train")
    if cfg.helmet.path:
        helmet = []
        if "base" in cfg.helmet.models:  # the untrained model depends on neither strategy nor training: shared
            helmet.append(Stage("helmet_base", "jobs.stages.helmet:run_base", toy, ("model", "helmet"),
                                lambda c: len(c.helmet.configs)))
        if "trained" in cfg.helmet.models:
            helmet.append(Stage("helmet", "jobs.stages.helmet:run", ("train",), ("helmet",),
                                lambda c: len(c.helmet.configs)))
        if cfg.helmet_judge.endpoint:  # HELMET's GPT-4 judge of LongQA and Summ: one task per script
            judges = {"helmet_base": ("helmet_base_judge", "run_base"), "helmet": ("helmet_judge", "run")}
            helmet += [Stage(judges[s.name][0], f"jobs.stages.helmet_judge:{judges[s.name][1]}", (s.name,),
                             ("helmet_judge",), lambda c: len(JUDGE_SCRIPTS)) for s in helmet]
        stages += [*helmet, Stage("helmet_scores", "jobs.stages.helmet:merge", tuple(s.name for s in helmet))]
        report_after += ("helmet_scores",)
    if cfg.general.runnable_tasks():
        # base and trained model (Table 5's before/after); the report shows them side by side
        stages += [Stage("general", "jobs.stages.general:run", ("train",), ("general",), lambda c: len(c.general.runnable_tasks())),
                   Stage("general_scores", "jobs.stages.general:merge", ("general",))]
        report_after += ("general_scores",)
    stages.append(Stage("report", "jobs.stages.report:run", report_after))
    return stages


def stage_fingerprints(cfg: ExperimentConfig, stages: list[Stage]) -> dict[str, str]:
    data = cfg.to_dict()
    # where the curves are logged, and whether spent checkpoints stay, change no output: no rerun for them
    del data["train"]["report_to"], data["train"]["keep_checkpoints"]
    prints: dict[str, str] = {}
    for stage in stages:
        prints[stage.name] = fingerprint({
            "stage": stage.name,
            "shards": stage.shards(cfg),
            "config": {section: _value(data, section) for section in stage.sections},
            "upstream": [prints[name] for name in stage.depends],
        })
    return prints


def _value(data: dict, dotted: str):
    """A config section ("synthesis") or one key of it ("synthesis.sampling.max_new_tokens")."""
    for part in dotted.split("."):
        data = data[part]
    return data


def stage_by_name(cfg: ExperimentConfig, name: str) -> Stage:
    for stage in build_stages(cfg):
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r}; stages are {', '.join(s.name for s in build_stages(cfg))}")
