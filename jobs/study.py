"""`retmask study`: a strategy x seed grid of runs on this machine, then the study report.

Every run is an ordinary run directory under `<study>/runs/`. A stage whose fingerprint another
run already has is computed once, by the first run in the plan that has it (its owner), and the
others take its finished outputs (`LocalPipeline(donors=...)`): detection, head scores and the
untrained models' NIAH once for the study, chosen samples once per seed, each mask once per
strategy. A run starts when the owners of its shared stages have finished; up to
`study.parallel_runs` run at once, sharing the cores.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from jobs.local import LocalPipeline, PipelineFailed
from jobs.pipeline import build_stages, stage_fingerprints
from jobs.runner import record_config
from retmask.config import ExperimentConfig, StudyConfig, study_run_config
from retmask.errors import UserError
from retmask.io import write_json
from retmask.rundir import RunDir

POLL_SECONDS = 0.5


@dataclass
class StudyRun:
    strategy: str
    seed: int
    cfg: ExperimentConfig
    prints: dict[str, str]  # stage -> fingerprint

    @property
    def label(self) -> str:
        return f"{self.strategy} seed {self.seed}"

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

    return str(ensure_toy_model(study.smaller_toy_model, on_progress=lambda text: log(f"[smaller toy] {text}")))


def plan_runs(study: StudyConfig, experiment: dict, base: Path, study_dir: Path, seeds: list[int],
              rejected_model: str = "") -> list[StudyRun]:
    """One run per (seed, strategy), seeds outermost: the first run of each seed owns its chosen samples."""
    name = experiment.get("name") or "study"
    runs = []
    for seed in seeds:
        for strategy in study.strategies:
            cfg = study_run_config(experiment, base, f"{name}-{strategy}-seed{seed}", strategy, seed,
                                   rejected_model if strategy == "smaller-model" else "",
                                   study.overrides.get(strategy, []))
            cfg.run_dir = str(study_dir / "runs" / f"{strategy}-seed{seed}")
            runs.append(StudyRun(strategy, seed, cfg, stage_fingerprints(cfg, build_stages(cfg))))
    return runs


def owners(runs: list[StudyRun]) -> list[set[int]]:
    """For each run, the earlier runs whose stages it shares (it waits for them, then takes them)."""
    first_with: dict[str, int] = {}
    needs = []
    for index, run in enumerate(runs):
        mine = set()
        for stage_print in run.prints.values():
            owner = first_with.setdefault(stage_print, index)
            if owner != index:
                mine.add(owner)
        needs.append(mine)
    return needs


def execute(runs: list[StudyRun], parallel: int, log=print, timeout_min: int = 1440) -> dict[int, str]:
    """Run the plan; returns the failed runs with their error (a run whose owner failed is not
    started)."""
    needs = owners(runs)
    finished: set[int] = set()
    failed: dict[int, str] = {}
    running: dict[int, threading.Thread] = {}
    lock = threading.Lock()
    cpus = os.cpu_count() or 1

    def work(index: int, cores: int) -> None:
        run = runs[index]
        donors = [runs[i].run for i in sorted(needs[index])]
        try:
            LocalPipeline(run.cfg, run.run, timeout_min=timeout_min, donors=donors, cores=cores,
                          log=lambda line: log(f"[{run.label}] {line}")).execute(max_parallel=cores)
        except (PipelineFailed, UserError) as error:
            with lock:
                failed[index] = f"{run.label}: {error}"
            log(f"[{run.label}] FAILED: {error}")
        else:
            with lock:
                finished.add(index)
            log(f"[{run.label}] finished")

    pending = list(range(len(runs)))
    while pending or running:
        for index in [i for i, t in running.items() if not t.is_alive()]:
            running.pop(index)  # its thread recorded it as finished or failed before ending
        with lock:
            for index in [i for i in pending if needs[i] & failed.keys()]:
                pending.remove(index)
                failed[index] = f"{runs[index].label}: not started: {', '.join(runs[i].label for i in sorted(needs[index] & failed.keys()))} failed"
            ready = [i for i in pending if needs[i] <= finished]
        if pending and not running and not ready:  # owners come first in the plan: cannot happen
            raise RuntimeError("study plan has runs waiting on runs that never start")
        while ready and len(running) < parallel:
            index = ready.pop(0)
            pending.remove(index)
            # Share the cores among the runs going now: the first run, alone, gets all of them.
            cores = max(1, cpus // min(parallel, len(running) + 1 + len(ready)))
            thread = threading.Thread(target=work, args=(index, cores), name=runs[index].label, daemon=True)
            running[index] = thread
            thread.start()
        time.sleep(POLL_SECONDS)
    return failed


def run_study(study: StudyConfig, experiment: dict, base: Path, study_dir: Path, development: bool = False,
              log=print) -> tuple[Path, dict[int, str]]:
    """Plan, run and report a study; returns the report's path and the failed runs."""
    from analysis.study import write_study_report

    seeds = study.development_seeds if development else study.seeds
    if not seeds:
        raise UserError("study.development_seeds is empty; name the seeds hyper-parameters are chosen on")
    runs = plan_runs(study, experiment, base, study_dir, seeds, smaller_model_path(study, log))
    for run in runs:
        record_config(run.cfg)
    write_json(plan_file(study_dir), {
        "name": experiment.get("name"), "development": development, "seeds": seeds,
        "strategies": study.strategies, "long_from": study.long_from, "metric": study.metric,
        "runs": [{"strategy": r.strategy, "seed": r.seed, "run_dir": str(r.run.root)} for r in runs]})
    shared = len({p for r in runs for p in r.prints.values()})
    total = sum(len(r.prints) for r in runs)
    log(f"{len(runs)} runs ({len(study.strategies)} strategies x seeds {seeds}): {total} stages, {shared} to compute")
    failed = execute(runs, study.parallel_runs, log)
    return write_study_report(study_dir), failed

