"""`retmask study --cluster`: a study's runs submitted to a batch scheduler, one run after the
other in the plan's order. A run's stages that an earlier run computes (jobs/sharing.py) are no
jobs of its own: its jobs wait for that run's jobs and take the outputs when they start.

The same command, rerun, goes on from where the study stands: runs with jobs queued or running are
left alone, runs with failed or lost shards are resumed (`retmask resume`), and once every run
has finished it writes the study report, tau table included.
"""
from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from jobs import control
from jobs.profiles import ClusterProfile
from jobs.rehearse import training_world
from jobs.status import StageStatus, run_status
from jobs.study import (StudyFile, StudyRun, all_runs, plan_file, plan_runs, prepare_studies, report_study,
                        smaller_model_path, stage_owners, study_seeds)
from retmask.config import ExperimentConfig
from retmask.errors import UserError
from retmask.io import read_json
from retmask.rundir import RunDir


def run_state(run: RunDir, query_scheduler: bool = True) -> tuple[str, list[StageStatus]]:
    """The run's state and its stages' status. new (never submitted), finished, active (jobs queued
    or running, none failed), failed (failed or blocked shards), or incomplete (shards neither done
    nor queued: lost jobs)."""
    if not run.manifest_path.is_file():
        return "new", []
    stages, _ = run_status(run, query_scheduler)
    states = {shard.state for stage in stages for shard in stage.states}
    if states <= {"done"}:
        return "finished", stages
    if states & {"failed", "blocked"}:
        return "failed", stages
    return ("active" if states & {"running", "pending"} else "incomplete"), stages


def study_status(study_dir: Path, query_scheduler: bool = True) -> str:
    """One line per run of a study (`retmask status STUDY_DIR`): its state, shards done and failed."""
    plan = read_json(plan_file(study_dir))
    lines = [f"{'run':<44}{'state':<12}{'shards done':>14}{'failed':>8}", "-" * 78]
    for entry in plan["runs"]:
        run = RunDir(entry["run_dir"])
        state, stages = run_state(run, query_scheduler)
        shards = [shard.state for stage in stages for shard in stage.states]
        done = f"{shards.count('done')}/{len(shards)}" if shards else "-"
        lines.append(f"{run.root.name:<44}{state:<12}{done:>14}{shards.count('failed'):>8}")
    return "\n".join(lines)


def submit_studies(files: list[StudyFile], development: bool, profile: ClusterProfile, force: bool = False,
                   log=print, check_inputs: Callable[[ExperimentConfig], None] = lambda cfg: None,
                   rehearse: bool = False) -> list[Path | None]:
    """Submit (or resume) every run of the studies that needs it, the runs of all of them in one
    plan (a stage computed by one is taken by the others); per study its report's path once every
    one of its runs has finished, else None."""
    prepared = prepare_studies(files, development, log, rehearse, training_world(profile))
    runs = all_runs(prepared)
    for p in prepared:
        check_inputs(p.runs[0].cfg)  # a study's runs differ in strategy, seed and tau, not in their inputs
    for run, shared in zip(runs, stage_owners(runs)):
        _advance(run, shared, profile, force, log)
    reports = []
    for p in prepared:
        states = [run_state(run.run)[0] for run in p.runs]
        if all(state == "finished" for state in states):
            reports.append(report_study(p))
            continue
        waiting = sum(state != "finished" for state in states)
        log(f"{p.dir.name}: {len(states) - waiting} of {len(states)} runs finished. Follow them with `retmask status "
            f"{shlex.quote(str(p.dir))}` (a run's stages: `retmask status RUN_DIR`); rerun this command when their "
            "jobs have ended: it resubmits what failed and writes the study report once every run has finished")
        reports.append(None)
    return reports


def dry_run_studies(files: list[StudyFile], development: bool, profile: ClusterProfile, rehearse: bool = False) -> str:
    """Each run's job graph as `retmask submit --dry-run` prints it, what it takes from which run
    included; nothing is submitted (a rehearsal builds its twins)."""
    from jobs.cluster import ClusterPipeline
    from jobs.rehearse import rehearse_study, training_world
    from retmask.rehearsal import rehearsal_dir

    runs = []
    for file in files:
        planned = plan_runs(file.study, file.experiment, file.base, file.dir, study_seeds(file.study, development),
                            smaller_model_path(file.study, log=lambda line: None))
        if rehearse:
            _, planned = rehearse_study(file.study, planned, Path(rehearsal_dir(file.dir)), file.dir,
                                        log=lambda line: None, world_size=training_world(profile))
        runs += planned
    texts = []
    for run, shared in zip(runs, stage_owners(runs)):
        texts.append(f"# ===== run {run.label}: {run.run.root}\n"
                     + ClusterPipeline(run.cfg, run.run, profile, shared=shared, until=run.until).graph())
    return "\n".join(texts)


def _advance(run: StudyRun, shared: dict[str, RunDir], profile: ClusterProfile, force: bool, log) -> None:
    """One run's next step: submitted when new, resumed when failed or incomplete, else left."""
    state, _ = run_state(run.run)
    say = lambda line: log(f"[{run.label}] {line}")  # noqa: E731
    recorded = {name: entry.get("fingerprint") for name, entry in run.run.read_manifest().get("stages", {}).items()}
    changed = [name for name, stage_print in run.prints.items() if recorded.get(name, stage_print) != stage_print]
    if changed and state == "active":
        raise UserError(f"{run.label}: the study config changed ({', '.join(changed)}) while jobs of the earlier one "
                        f"are queued or running; withdraw them first (`retmask cancel {shlex.quote(str(run.run.root))}`)")
    if changed and state == "finished":
        state = "changed"  # resumed with the new config: its outputs of the old one are refused unless --force
    if state in ("finished", "active"):
        say("finished" if state == "finished" else "jobs queued or running; left as they are")
        return
    if state == "new":
        control.submit(run.cfg, run.run, profile, force=force, log=say, shared=shared, until=run.until)
    else:
        say(f"{state}: resubmitting what is not done")
        control.resume(run.cfg, run.run, profile, force=force, log=say, shared=shared)
