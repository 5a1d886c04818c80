"""`--rehearse` for `retmask run`, `submit` and `study`: the experiment (every run of a study) turned
into its rehearsal (retmask/rehearsal.py) after the real one has passed every check, written to
its own directory (the real name with -rehearsal), the same stages and job graph."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.pipeline import build_stages, stage_fingerprints
from retmask.config import ExperimentConfig
from retmask.rehearsal import SUFFIX, niah_map, record, rehearsal_config, rehearsal_dir
from retmask.study_checks import PlannedVariant, check_study
from retmask.study_config import StudyConfig

if TYPE_CHECKING:
    from jobs.study import StudyRun

BANNER = (f"REHEARSAL: tiny random twins of the models, every workload cut to a handful; written to *{SUFFIX}. "
          "Its numbers mean nothing: it shows the plan runs through to its report.")


def training_world(profile) -> int:
    """The processes a profile's training job runs (its GPUs; one where it has none)."""
    return profile.train_nodes * max(profile.train_processes(), 1) if profile.kind != "local" else 1


def check_real_grid(cfg: ExperimentConfig) -> None:
    """The real detection grid, built with the real tokenizer before the rehearsal maps it down: a
    haystack too short for its lengths fails now, not at paper scale."""
    from jobs.stages import detect

    detect.check_inputs(cfg)


def rehearse_experiment(cfg: ExperimentConfig, log=print, world_size: int = 1) -> ExperimentConfig:
    """The rehearsal of one experiment, its run directory beside the real one's."""
    check_real_grid(cfg)
    notes: list[str] = []
    rehearsal = rehearsal_config(cfg, niah_map([cfg]), notes, world_size)
    rehearsal.run_dir = rehearsal_dir(cfg.run_dir)
    log(BANNER)
    for note in notes:
        log(f"  {note}")
    return rehearsal


def record_rehearsal(real: ExperimentConfig, rehearsal: ExperimentConfig) -> None:
    record(Path(rehearsal.run_dir), real, rehearsal, [])


def rehearse_study(study: StudyConfig, runs: list[StudyRun], study_dir: Path, real_dir: Path,
                   log=print, world_size: int = 1) -> tuple[StudyConfig, list[StudyRun]]:
    """The study's rehearsal: each run's rehearsal config under `study_dir` (the real study's
    directory with -rehearsal), the long band mapped with the NIAH grids, the report's needs checked
    again on it."""
    for cfg in {run.variant: run.cfg for run in runs}.values():
        check_real_grid(cfg)
    lengths = niah_map([run.cfg for run in runs])
    rehearsed_study = dataclasses.replace(study, long_from=lengths(study.long_from))
    rehearsed, notes = [], []
    for run in runs:
        cfg = rehearsal_config(run.cfg, lengths, notes, world_size)
        cfg.run_dir = str(study_dir / Path(run.cfg.run_dir).relative_to(real_dir))
        prints = stage_fingerprints(cfg, build_stages(cfg))
        rehearsed.append(dataclasses.replace(run, cfg=cfg, prints={stage: prints[stage] for stage in run.prints}))
    check_study(rehearsed_study, {run.variant: PlannedVariant(run.cfg, set(run.prints)) for run in reversed(rehearsed)})
    log(BANNER)
    for note in dict.fromkeys(notes):
        log(f"  {note}")
    return rehearsed_study, rehearsed


def record_study_rehearsal(real: list[StudyRun], rehearsed: list[StudyRun]) -> None:
    """What the rehearsal changed in each run, beside it."""
    for before, after in zip(real, rehearsed):
        record(Path(after.cfg.run_dir), before.cfg, after.cfg, [])
