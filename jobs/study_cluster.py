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
from jobs.status import StageStatus, run_status
from jobs.study import (StudyRun, plan_file, plan_runs, prepare_study, report_study, smaller_model_path, stage_owners,
                        study_seeds)
from retmask.config import ExperimentConfig
from retmask.errors import UserError
from retmask.io import read_json
from retmask.rundir import RunDir
from retmask.study_config import StudyConfig


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


def submit_study(study: StudyConfig, experiment: dict, base: Path, study_dir: Path, development: bool,
                 profile: ClusterProfile, force: bool = False, log=print,
                 check_inputs: Callable[[ExperimentConfig], None] = lambda cfg: None) -> Path | None:
    """Submit (or resume) every run of the study that needs it; the report's path once every run
    has finished, else None."""
    runs = prepare_study(study, experiment, base, study_dir, development, log)
    check_inputs(runs[0].cfg)  # the runs differ in strategy, seed and tau, not in their inputs
    owned = stage_owners(runs)
    for run, shared in zip(runs, owned):
        _advance(run, shared, profile, force, log)
    states = [run_state(run.run)[0] for run in runs]
    if all(state == "finished" for state in states):
        return report_study(runs, study_dir, experiment)
    waiting = sum(state != "finished" for state in states)
    log(f"{len(runs) - waiting} of {len(runs)} runs finished. Follow them with `retmask status "
        f"{shlex.quote(str(study_dir))}` (a run's stages: `retmask status RUN_DIR`); rerun this command when their "
        f"jobs have ended: it resubmits what failed and writes the study report once every run has finished")
    return None


def dry_run_study(study: StudyConfig, experiment: dict, base: Path, study_dir: Path, development: bool,
                  profile: ClusterProfile) -> str:
    """Each run's job graph as `retmask submit --dry-run` prints it, what it takes from which run
    included; nothing is written or submitted."""
    from jobs.cluster import ClusterPipeline

    runs = plan_runs(study, experiment, base, study_dir, study_seeds(study, development),
                     smaller_model_path(study, log=lambda line: None))
    texts = []
    for run, shared in zip(runs, stage_owners(runs)):
        texts.append(f"# ===== run {run.label}: {run.run.root}\n"
                     + ClusterPipeline(run.cfg, run.run, profile, shared=shared).graph())
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
        control.submit(run.cfg, run.run, profile, force=force, log=say, shared=shared)
    else:
        say(f"{state}: resubmitting what is not done")
        control.resume(run.cfg, run.run, profile, force=force, log=say, shared=shared)
