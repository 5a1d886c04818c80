"""`retmask study`: a strategy x seed grid of runs on this machine, then the study report.

Every run is an ordinary run directory under `<study>/runs/`. A stage whose fingerprint an
earlier run of the plan also has is computed once, by that run (its owner); the others wait for
it there and take its finished outputs (`LocalPipeline(owners=...)`): detection, head scores and
the untrained models' NIAH once for the study, chosen samples once per seed, each mask once per
strategy. Every run goes at once, each in a thread; the shards of all of them share
`study.processes` process slots. A tau sweep (`study.taus`) adds a run per tau; selection is the
first stage tau reaches, so detection and head scores stay shared across taus.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from jobs.control import refuse_a_second_driver
from jobs.local import LocalPipeline, upstream_of
from jobs.pipeline import build_stages, stage_fingerprints
from jobs.rehearse import record_study_rehearsal, rehearse_study
from jobs.runner import record_config
from retmask.config import ExperimentConfig
from retmask.errors import UserError
from retmask.typed_yaml import ConfigError
from retmask.io import read_json, write_json
from retmask.rehearsal import rehearsal_dir
from retmask.rundir import RunDir
from retmask.study_checks import PlannedVariant, check_study
from retmask.study_config import StudyConfig, study_run_config
from retmask.tracking import log_results, study_destination

POLL_SECONDS = 0.5
DETECTION_STAGES = ("detect", "merge_scores", "select_heads", "mask")  # a study ending at one reads no prompts


@dataclass
class StudyRun:
    strategy: str
    seed: int
    cfg: ExperimentConfig
    prints: dict[str, str]  # stage -> fingerprint
    tau: float | None = None  # set in a tau sweep only
    variant: str | None = None  # set in a study with variants only
    until: str | None = None  # the run's last stage (study.until), None: the report

    @property
    def label(self) -> str:
        where = f"{self.variant}: " if self.variant is not None else ""
        return f"{where}{self.strategy}{tau_tag(self.tau, ' tau ')} seed {self.seed}"

    @property
    def run(self) -> RunDir:
        return RunDir(self.cfg.run_dir)


def plan_file(study_dir: Path) -> Path:
    return study_dir / "study.json"


def smaller_model_path(study: StudyConfig, log=print) -> str:
    """The smaller-model strategy's rejected source on the toy: the shipped (or cached) checkpoint
    of the smaller recipe, trained first if neither exists."""
    if study.smaller_toy_model is None or "smaller-model" not in study.strategies:
        return ""
    from retmask.toy.cache import ensure_toy_model

    path = ensure_toy_model(study.smaller_toy_model, on_progress=lambda progress: log(f"[smaller toy] {progress.line()}"))
    return str(path)


def study_name(experiment: dict) -> str:
    return experiment.get("name") or "study"


def tau_tag(tau: float | None, prefix: str) -> str:
    """A sweep's tau in run names and labels; nothing outside a sweep (names stay as they were)."""
    return "" if tau is None else f"{prefix}{tau:g}"


def plan_runs(study: StudyConfig, experiment: dict, base: Path, study_dir: Path, seeds: list[int],
              rejected_model: str = "") -> list[StudyRun]:
    """One run per (variant, seed, tau, strategy), seeds outside strategies: the first run of each
    seed owns its chosen samples. A variant's runs live in runs/<variant>/."""
    name = study_name(experiment)
    runs, problems = [], {}
    for variant in study.variants or [None]:
        keys = study.variants[variant].config if variant is not None else {}
        folder = study_dir / "runs" / variant if variant is not None else study_dir / "runs"
        for seed in seeds:
            for tau in study.taus or [None]:
                for strategy in study.strategies_of(variant):
                    stem = f"{strategy}{tau_tag(tau, '-tau')}-seed{seed}"
                    run_name = "-".join(part for part in (name, variant, stem) if part)
                    try:
                        cfg = study_run_config(experiment, base, run_name, strategy, seed,
                                               rejected_model if strategy == "smaller-model" else "",
                                               study.overrides.get(strategy, []), tau, keys,
                                               detection_only=study.until in DETECTION_STAGES)
                    except ConfigError as error:  # every run's problems, named once each
                        where = f"{variant}: " if variant is not None else ""
                        problems.update(dict.fromkeys(f"{where}{strategy}: {line}" for line in _problem_lines(error)))
                        continue
                    cfg.run_dir = str(folder / stem)
                    stages = build_stages(cfg)
                    prints = stage_fingerprints(cfg, stages)
                    if study.until:
                        prints = {s.name: prints[s.name] for s in upstream_of(stages, study.until)}
                    runs.append(StudyRun(strategy, seed, cfg, prints, tau, variant, study.until or None))
    if problems:
        raise ConfigError(_missing_inputs_text(list(problems), study.unset_inputs))
    if study.taus:
        check_tau_sweep(study, runs[0].cfg)
    # what the report will read, checked now: the first run of each variant speaks for its variant
    check_study(study, {run.variant: PlannedVariant(run.cfg, set(run.prints)) for run in reversed(runs)})
    return runs


def _problem_lines(error: ConfigError) -> list[str]:
    """One line per problem of a config error (resolve lists several under a heading)."""
    lines = str(error).splitlines()
    return [line.strip().removeprefix("- ") for line in (lines[1:] if len(lines) > 1 else lines)]


def _missing_inputs_text(problems: list[str], unset: dict[str, list[str]]) -> str:
    """The problems of a study's runs, and the inputs not given that feed the keys they name."""
    hints = [f"inputs.{name} is not given (it feeds {', '.join(keys)})" for name, keys in unset.items()
             if any(f" {key}:" in f" {problem.split(': ', 1)[-1]}" for key in keys for problem in problems)]
    give = "; give the inputs as --set inputs.NAME=PATH" if hints else ""
    return (f"the study's runs cannot start ({len(problems)} problem(s){give}):\n  - " + "\n  - ".join(problems + hints))


def check_tau_sweep(study: StudyConfig, cfg: ExperimentConfig) -> None:
    """A sweep must reach the heads (its proxy is checked with the rest of the report's needs)."""
    if cfg.selection.rule != "threshold":
        raise UserError(f"study.taus sweeps selection.tau, which selection.rule={cfg.selection.rule!r} ignores; "
                        "set selection.rule=threshold")


def stage_owners(runs: list[StudyRun]) -> list[dict[str, RunDir]]:
    """For each run, its stages that an earlier run of the plan computes: stage -> that run."""
    first_with: dict[str, int] = {}
    owned = []
    for index, run in enumerate(runs):
        mine = {}
        for stage, stage_print in run.prints.items():
            owner = first_with.setdefault(stage_print, index)
            if owner != index:
                mine[stage] = runs[owner].run
        owned.append(mine)
    return owned


def execute(runs: list[StudyRun], processes: int, log=print, timeout_min: int = 1440,
            finished_at: dict[int, float] | None = None) -> dict[int, str]:
    """Run every run of the plan at once, each in a thread, with at most `processes` shards running
    over all of them; a run waits for the stages its owners compute. Returns the failed runs; each
    run's end time goes into `finished_at` (run index -> time.time())."""
    owned = stage_owners(runs)
    slots = threading.Semaphore(processes)
    stop = threading.Event()  # Ctrl-C or SIGTERM: every pipeline cancels its shards
    ended: set[Path] = set()
    failed: dict[int, str] = {}
    lock = threading.Lock()
    cores = max(1, (os.cpu_count() or 1) // processes)

    def work(index: int) -> None:
        run = runs[index]
        try:
            LocalPipeline(run.cfg, run.run, timeout_min=timeout_min, owners=owned[index], until=run.until,
                          owner_ended=lambda owner: owner.root in ended, cores=cores, slots=slots, stop=stop,
                          log=lambda line: log(f"[{run.label}] {line}")).execute(max_parallel=processes)
        except Exception as error:  # recorded; the runs waiting on this one's stages fail in turn
            with lock:
                failed[index] = f"{run.label}: {error}"
            log(f"[{run.label}] FAILED: {error}")
        else:
            log(f"[{run.label}] finished")
        finally:
            with lock:
                ended.add(run.run.root)
                if finished_at is not None:
                    finished_at[index] = time.time()

    threads = [threading.Thread(target=work, args=(i,), name=r.label, daemon=True) for i, r in enumerate(runs)]
    try:
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            time.sleep(POLL_SECONDS)
    except BaseException:
        stop.set()
        for thread in threads:
            thread.join()
        raise
    return failed


def study_seeds(study: StudyConfig, development: bool) -> list[int]:
    seeds = study.development_seeds if development else study.seeds
    if not seeds:
        raise UserError("study.development_seeds is empty; name the seeds hyper-parameters are chosen on")
    return seeds


@dataclass
class StudyFile:
    """A study as loaded from its file, and the directory it lives in."""
    study: StudyConfig
    experiment: dict
    base: Path  # the folder relative paths of its file are read from
    dir: Path


@dataclass
class PreparedStudy:
    """A study's runs, checked and written down, and where it lives (a rehearsal: beside the real one)."""
    study: StudyConfig
    experiment: dict
    runs: list[StudyRun]
    dir: Path


def prepare_study(file: StudyFile, development: bool, log=print, rehearse: bool = False,
                  world_size: int = 1) -> PreparedStudy:
    """The study's runs, planned, checked and written down (study.json), before any runs. With
    `rehearse`, the real plan is checked, then turned into its rehearsal in <study_dir>-rehearsal."""
    study, experiment, study_dir = file.study, file.experiment, file.dir
    seeds = study_seeds(study, development)
    runs = plan_runs(study, experiment, file.base, study_dir, seeds, smaller_model_path(study, log))
    if rehearse:
        real_runs, real_dir, study_dir = runs, study_dir, Path(rehearsal_dir(study_dir))
        study, runs = rehearse_study(study, runs, study_dir, real_dir, log, world_size)
        record_study_rehearsal(real_runs, runs)
    # the study's own tracker run, beside those of its runs; its trackers are checked before any run starts
    study_destination(runs[0].cfg, study_dir, study_name(experiment))
    write_json(plan_file(study_dir), {
        "name": experiment.get("name"), "development": development, "rehearsal": rehearse, "seeds": seeds,
        "strategies": study.strategies, "long_from": study.long_from, "metric": study.metric,
        **({"taus": study.taus, "tau_metric": study.tau_metric, "tau_helmet_categories": study.tau_helmet_categories}
           if study.taus else {}),
        **({"variants": {name: {"label": v.label or name, "strategies": study.strategies_of(name)}
                         for name, v in study.variants.items()}} if study.variants else {}),
        "until": study.until, "stages": sorted({stage for r in runs for stage in r.prints}),
        "paper_tables": study.paper_tables,
        "runs": [{"strategy": r.strategy, "seed": r.seed, "run_dir": str(r.run.root),
                  **({"tau": r.tau} if r.tau is not None else {}),
                  **({"variant": r.variant} if r.variant is not None else {})} for r in runs]})
    shared = len({p for r in runs for p in r.prints.values()})
    total = sum(len(r.prints) for r in runs)
    taus = f" x taus {study.taus}" if study.taus else ""
    variants = f"{len(study.variants)} variants x " if study.variants else ""
    log(f"{study_dir.name}: {len(runs)} runs ({variants}{len(study.strategies)} strategies{taus} x seeds {seeds}): "
        f"{total} stages, {shared} to compute")
    return PreparedStudy(study, experiment, runs, study_dir)


def prepare_studies(files: list[StudyFile], development: bool, log=print, rehearse: bool = False,
                    world_size: int = 1) -> list[PreparedStudy]:
    """Several studies planned together: a stage one of them computes under the same fingerprint
    as another (the paper's RetMask Llama-3.1 run is in Tables 1, 2, 5, 6, 8 and Figure 5) is
    computed once, by the first that has it."""
    directories = [f.dir for f in files]
    if len(set(directories)) < len(directories):
        raise UserError(f"two studies share a directory ({', '.join(map(str, directories))}); give them other names")
    prepared = [prepare_study(f, development, log, rehearse, world_size) for f in files]
    if len(prepared) > 1:
        runs = [run for p in prepared for run in p.runs]
        log(f"{len(prepared)} studies, {len(runs)} runs: {len({p for r in runs for p in r.prints.values()})} stages to "
            "compute, the others shared")
    return prepared


def all_runs(prepared: list[PreparedStudy]) -> list[StudyRun]:
    return [run for p in prepared for run in p.runs]


def run_studies(files: list[StudyFile], development: bool = False, log=print,
                rehearse: bool = False) -> tuple[list[tuple[Path, float]], dict[int, str]]:
    """Plan, run and report studies on this machine, together; returns each report's path with the
    seconds its study took (until its last run ended), and the failed runs."""
    prepared = prepare_studies(files, development, log, rehearse)
    runs = all_runs(prepared)
    for run in runs:  # every refusal before any config is written
        refuse_a_second_driver(run.run, "local")
    for run in runs:
        record_config(run.cfg)
    processes = max(p.study.processes for p in prepared) or os.cpu_count() or 1
    started, finished_at = time.time(), {}
    failed = execute(runs, processes, log, finished_at=finished_at)
    reports, first = [], 0
    for p in prepared:
        took = max(finished_at[i] for i in range(first, first + len(p.runs))) - started
        reports.append((report_study(p), took))
        first += len(p.runs)
    return reports, failed


def report_study(prepared: PreparedStudy) -> Path:
    """The study report, also sent to the study's trackers."""
    from analysis.study_report import write_study_report

    report = write_study_report(prepared.dir)
    log_results(study_destination(prepared.runs[0].cfg, prepared.dir, study_name(prepared.experiment)), "study",
                study_figures(prepared.dir))
    return report


def study_figures(study_dir: Path) -> dict:
    """What the study sends to its trackers: Table 1's numbers, concentration, each run's health,
    and each claim's verdict (per variant in a study with variants), and the paper tables."""
    from analysis.study_report import results_by_variant

    results = read_json(study_dir / "report" / "study_results.json")
    figures = {}
    for variant, numbers in results_by_variant(results).items():
        mine = {"tables": numbers["tables"], "concentration": numbers["concentration"], "health": numbers["health"],
                "claims": {claim["key"]: f"{claim['verdict']}: {claim['statement']}" for claim in numbers["claims"]}}
        figures.update(mine if variant is None else {variant: mine})
    if results.get("paper_tables"):
        figures["paper_tables"] = results["paper_tables"]
    return figures

