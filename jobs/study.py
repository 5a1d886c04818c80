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

from jobs.local import LocalPipeline
from jobs.pipeline import build_stages, stage_fingerprints
from jobs.runner import record_config
from retmask.config import ExperimentConfig
from retmask.errors import UserError
from retmask.io import read_json, write_json
from retmask.rundir import RunDir
from retmask.study_config import StudyConfig, study_run_config
from retmask.tracking import log_results, study_destination

POLL_SECONDS = 0.5


@dataclass
class StudyRun:
    strategy: str
    seed: int
    cfg: ExperimentConfig
    prints: dict[str, str]  # stage -> fingerprint
    tau: float | None = None  # set in a tau sweep only

    @property
    def label(self) -> str:
        return f"{self.strategy}{tau_tag(self.tau, ' tau ')} seed {self.seed}"

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
    """One run per (seed, tau, strategy), seeds outermost: the first run of each seed owns its chosen samples."""
    name = study_name(experiment)
    runs = []
    for seed in seeds:
        for tau in study.taus or [None]:
            for strategy in study.strategies:
                stem = f"{strategy}{tau_tag(tau, '-tau')}-seed{seed}"
                cfg = study_run_config(experiment, base, f"{name}-{stem}", strategy, seed,
                                       rejected_model if strategy == "smaller-model" else "",
                                       study.overrides.get(strategy, []), tau)
                cfg.run_dir = str(study_dir / "runs" / stem)
                runs.append(StudyRun(strategy, seed, cfg, stage_fingerprints(cfg, build_stages(cfg)), tau))
    if study.taus:
        check_tau_sweep(study, runs[0].cfg)
    return runs


def check_tau_sweep(study: StudyConfig, cfg: ExperimentConfig) -> None:
    """A sweep must reach the heads and its proxy must be computed, before any run starts."""
    if cfg.selection.rule != "threshold":
        raise UserError(f"study.taus sweeps selection.tau, which selection.rule={cfg.selection.rule!r} ignores; "
                        "set selection.rule=threshold")
    if study.tau_metric.startswith("helmet") and not cfg.helmet.path:
        raise UserError(f"study.tau_metric={study.tau_metric}, but the experiment has no helmet.path: give your HELMET checkout "
                        "or choose tau_metric niah_rouge_recall or niah_accuracy")


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


def execute(runs: list[StudyRun], processes: int, log=print, timeout_min: int = 1440) -> dict[int, str]:
    """Run every run of the plan at once, each in a thread, with at most `processes` shards running
    over all of them; a run waits for the stages its owners compute. Returns the failed runs."""
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
            LocalPipeline(run.cfg, run.run, timeout_min=timeout_min, owners=owned[index],
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


def prepare_study(study: StudyConfig, experiment: dict, base: Path, study_dir: Path, development: bool,
                  log=print) -> list[StudyRun]:
    """The study's runs, planned, checked and written down (study.json), before any runs."""
    seeds = study_seeds(study, development)
    runs = plan_runs(study, experiment, base, study_dir, seeds, smaller_model_path(study, log))
    # the study's own tracker run, beside those of its runs; its trackers are checked before any run starts
    study_destination(runs[0].cfg, study_dir, study_name(experiment))
    write_json(plan_file(study_dir), {
        "name": experiment.get("name"), "development": development, "seeds": seeds,
        "strategies": study.strategies, "long_from": study.long_from, "metric": study.metric,
        **({"taus": study.taus, "tau_metric": study.tau_metric, "tau_helmet_categories": study.tau_helmet_categories}
           if study.taus else {}),
        "runs": [{"strategy": r.strategy, "seed": r.seed, "run_dir": str(r.run.root),
                  **({"tau": r.tau} if r.tau is not None else {})} for r in runs]})
    shared = len({p for r in runs for p in r.prints.values()})
    total = sum(len(r.prints) for r in runs)
    taus = f" x taus {study.taus}" if study.taus else ""
    log(f"{len(runs)} runs ({len(study.strategies)} strategies{taus} x seeds {seeds}): {total} stages, "
        f"{shared} to compute")
    return runs


def run_study(study: StudyConfig, experiment: dict, base: Path, study_dir: Path, development: bool = False,
              log=print) -> tuple[Path, dict[int, str]]:
    """Plan, run and report a study on this machine; returns the report's path and the failed runs."""
    runs = prepare_study(study, experiment, base, study_dir, development, log)
    for run in runs:
        record_config(run.cfg)
    failed = execute(runs, study.processes or os.cpu_count() or 1, log)
    return report_study(runs, study_dir, experiment), failed


def report_study(runs: list[StudyRun], study_dir: Path, experiment: dict) -> Path:
    """The study report, also sent to the study's trackers."""
    from analysis.study import write_study_report

    report = write_study_report(study_dir)
    log_results(study_destination(runs[0].cfg, study_dir, study_name(experiment)), "study", study_figures(study_dir))
    return report


def study_figures(study_dir: Path) -> dict:
    """What the study sends to its trackers: Table 1's numbers, concentration, each run's health,
    and each claim's verdict."""
    results = read_json(study_dir / "report" / "study_results.json")
    return {"tables": results["tables"], "concentration": results["concentration"], "health": results["health"],
            "claims": {claim["key"]: f"{claim['verdict']}: {claim['statement']}" for claim in results["claims"]}}

