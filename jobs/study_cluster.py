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
from dataclasses import dataclass
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


def read_plan(study_dir: Path) -> dict:
    """A study directory's study.json, checked for the shape status reads: one clear error if not."""
    path = plan_file(study_dir)
    try:
        plan = read_json(path)
    except ValueError as error:
        plan = error
    runs = plan.get("runs") if isinstance(plan, dict) else None
    if not isinstance(runs, list) or not all(isinstance(entry, dict) and "run_dir" in entry for entry in runs):
        raise UserError(f"{path} is not a study plan (expected an object with \"runs\": [{{\"run_dir\": ...}}, ...]); "
                        "rerun the study's command: it writes the plan again and keeps every finished run")
    return plan


def study_status(study_dir: Path, query_scheduler: bool = True) -> str:
    """One line per run of a study (`retmask status STUDY_DIR`): its state, shards done and failed."""
    plan = read_plan(study_dir)
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
    for p in prepared:  # a study's runs differ in strategy, seed and tau, not in their inputs; its variants do
        for run in {r.variant: r for r in reversed(p.runs)}.values():
            check_inputs(run.cfg)
    steps = [_next_step(run, shared) for run, shared in zip(runs, stage_owners(runs))]  # every refusal first
    for step in steps:
        _advance(step, profile, force, log)
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
    from jobs.evaluation_view import evaluation_lines
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
                     + ClusterPipeline(run.cfg, run.run, profile, shared=shared, until=run.until).graph() + "\n"
                     + "\n".join(evaluation_lines(run.cfg, run.run)))
    return "\n".join(texts)


@dataclass
class NextStep:
    """What a study rerun does with one of its runs, decided before anything is done to any."""
    run: StudyRun
    shared: dict[str, RunDir]
    state: str  # new, finished, active, failed, incomplete, changed


def _next_step(run: StudyRun, shared: dict[str, RunDir]) -> NextStep:
    """The run's next step; a changed config while any of its tasks is queued or running (failed
    shards or not) is refused: the stage would end up holding rows of two configs."""
    state, stages = run_state(run.run)
    recorded = {name: entry.get("fingerprint") for name, entry in run.run.read_manifest().get("stages", {}).items()}
    changed = [name for name, stage_print in run.prints.items() if recorded.get(name, stage_print) != stage_print]
    live = [s.job_id for stage in stages for s in stage.states if s.state in ("running", "pending") and s.job_id]
    if changed and live:
        raise UserError(f"{run.label}: the study config changed ({', '.join(changed)}) while {len(live)} of its jobs "
                        f"of the earlier config are queued or running ({', '.join(live[:3])}"
                        f"{', ...' if len(live) > 3 else ''}); nothing was submitted or cancelled. Let them end or "
                        f"withdraw them (`retmask cancel {shlex.quote(str(run.run.root))}`), then rerun")
    if changed and state == "finished":
        state = "changed"  # resumed with the new config: its outputs of the old one are refused unless --force
    return NextStep(run, shared, state)


def _advance(step: NextStep, profile: ClusterProfile, force: bool, log) -> None:
    """One run's next step: submitted when new, resumed when failed, incomplete or changed, else left."""
    run, state = step.run, step.state
    say = lambda line: log(f"[{run.label}] {line}")  # noqa: E731
    if state in ("finished", "active"):
        say("finished" if state == "finished" else "jobs queued or running; left as they are")
        return
    if state == "new":
        control.submit(run.cfg, run.run, profile, force=force, log=say, shared=step.shared, until=run.until)
    else:
        say(f"{state}: resubmitting what is not done")
        control.resume(run.cfg, run.run, profile, force=force, log=say, shared=step.shared)
