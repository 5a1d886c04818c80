"""What a study's report will read, checked against its planned runs before any of them starts: a
report that would fail or come out empty after days of GPU jobs is refused at submission instead,
with every problem named at once.

- the long band (study.long_from) against each run's NIAH lengths: both bands must hold a length;
- a tau sweep's HELMET proxy: every category it averages must be run, at every length averaged;
- each paper table (study.paper_tables): its variants, strategies, taus, lengths and HELMET
  categories against the study's, and the stage its numbers come from against study.until.
"""
from __future__ import annotations

from dataclasses import dataclass

from retmask.config import ExperimentConfig
from retmask.errors import UserError
from retmask.helmet import HelmetError, config_categories
from retmask.niah import grid
from retmask.paper_tables import AVERAGE, BASE, CATEGORIES, PAPER_TABLES, SOURCES, PaperTable
from retmask.study_config import StudyConfig


class StudyCheckError(UserError):
    pass


@dataclass
class PlannedVariant:
    """What the checks need of one variant's runs: its config (the runs differ in strategy, seed and
    tau only) and the stages its runs reach."""
    cfg: ExperimentConfig
    stages: set[str]


def check_study(study: StudyConfig, variants: dict[str | None, PlannedVariant]) -> None:
    """Every problem the study's report would meet, in one error; nothing when there is none."""
    problems = []
    for name, planned in variants.items():
        where = f"variant {name}: " if name is not None else ""
        problems += [where + p for p in _long_band(study, planned)]
        problems += [where + p for p in _tau_proxy(study, planned)]
    for key in study.paper_tables:
        problems += [f"{key}: {p}" for p in _paper_table(PAPER_TABLES[key], study, variants)]
    if problems:
        raise StudyCheckError("the study's report could not be written as configured; nothing was started:\n  - "
                              + "\n  - ".join(dict.fromkeys(problems)))


def _long_band(study: StudyConfig, planned: PlannedVariant) -> list[str]:
    if "evaluate" not in planned.stages:
        return []
    lengths = grid(*planned.cfg.evaluation.niah_lengths)
    short = [n for n in lengths if n < study.long_from]
    long = [n for n in lengths if n >= study.long_from]
    if short and long:
        return []
    missing = "below" if not short else "at or above"
    return [f"study.long_from={study.long_from}: no NIAH length is {missing} it (evaluation.niah_lengths "
            f"{planned.cfg.evaluation.niah_lengths} gives {lengths}); the report sets the short band (ablation, C1) "
            f"against the long one (C2-C6): set study.long_from between {lengths[0] + 1} and {lengths[-1]}"]


def _run_categories(cfg: ExperimentConfig) -> dict[int, set[str]]:
    """Per HELMET length, the categories the run's helmet.configs score."""
    runs: dict[int, set[str]] = {}
    for config_file in cfg.helmet.configs:
        for length, categories in config_categories(cfg.helmet.path, config_file).items():
            runs.setdefault(length, set()).update(categories)
    return runs


def _helmet_coverage(cfg: ExperimentConfig, lengths: list[int], categories: list[str], why: str) -> list[str]:
    if not cfg.helmet.path:
        return [f"{why} needs HELMET, but helmet.path is empty: give your HELMET checkout"]
    try:
        run = _run_categories(cfg)
    except HelmetError as error:
        return [str(error)]
    problems = []
    for length in lengths:
        if length not in cfg.helmet.lengths:
            problems.append(f"{why} reads HELMET at {length}, which helmet.lengths {cfg.helmet.lengths} leaves out")
            continue
        if lost := [c for c in categories if c not in run.get(length, set())]:
            problems.append(f"{why} needs HELMET {', '.join(lost)} at {length}, which none of helmet.configs runs "
                            f"({', '.join(cfg.helmet.configs)}); add their config files")
    return problems


def _tau_proxy(study: StudyConfig, planned: PlannedVariant) -> list[str]:
    if not study.taus or not study.tau_metric.startswith("helmet"):
        return []
    return _helmet_coverage(planned.cfg, planned.cfg.helmet.lengths, study.tau_helmet_categories,
                            f"study.tau_metric={study.tau_metric}")


def _paper_table(table: PaperTable, study: StudyConfig, variants: dict[str | None, PlannedVariant]) -> list[str]:
    if not study.variants:
        return ["paper tables read study variants (a model, prompt set or reasoning setting each); this study has "
                "none: see configs/paper/ for the variant names each table reads"]
    problems = []
    stage = SOURCES[table.source]
    for cell in table.cells():
        if cell.variant not in variants:
            problems.append(f"reads variant {cell.variant}, which study.variants lacks ({', '.join(study.variants)})")
            continue
        planned = variants[cell.variant]
        strategies = study.strategies_of(cell.variant)
        if cell.strategy not in (None, BASE) and cell.strategy not in strategies:
            problems.append(f"reads {cell.strategy} runs of variant {cell.variant}, whose strategies are "
                            f"{', '.join(strategies)}")
        if cell.tau is not None and cell.tau not in study.taus:
            problems.append(f"reads runs at tau {cell.tau:g}, which study.taus {study.taus} does not run")
        if stage not in planned.stages:
            problems.append(f"reads stage {stage} of variant {cell.variant}, which its runs do not reach "
                            f"(study.until={study.until or 'report'})")
            continue
        if table.source.startswith("helmet"):
            if cell.strategy == BASE or table.source == "helmet_gain":
                if "base" not in planned.cfg.helmet.models:
                    problems.append(f"reads the untrained model's HELMET scores of variant {cell.variant}: add base "
                                    "to helmet.models")
            if cell.strategy != BASE and "trained" not in planned.cfg.helmet.models:
                problems.append(f"reads the trained models' HELMET scores of variant {cell.variant}: add trained to "
                                "helmet.models")
            categories = list(CATEGORIES) if cell.column == AVERAGE else [cell.column]
            problems += _helmet_coverage(planned.cfg, [cell.length], categories, f"variant {cell.variant}")
    return problems
