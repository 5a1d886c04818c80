"""Stages a study's run takes from another run of the study (its owner) instead of computing them.

Runs of a study that agree on a stage's fingerprint (detection for every strategy and tau, chosen
samples for every run of a seed) compute it once: the first run of the plan that has it owns it,
the others take its finished outputs (`RunDir.adopt`: hard links, renamed into place). Locally the
study's pipelines take them as their owners finish (jobs/local.py); on a cluster a run's jobs wait
for the owner's jobs of those stages and take them when they start.
"""
from __future__ import annotations

from pathlib import Path

from jobs.pipeline import Stage
from retmask.errors import UserError
from retmask.rundir import RunDir


def take_when_finished(run: RunDir, stage: str, fingerprint: str, shards: int, owner: RunDir) -> bool:
    """Take `stage` from `owner` if the owner has finished it; whether this run now has it."""
    if len(run.done_shards(stage, fingerprint)) == shards:
        return True
    if len(owner.done_shards(stage, fingerprint)) != shards:
        return False
    if run.stage_dir(stage).exists():
        run.supersede(stage)  # what a cut-short earlier attempt left: kept aside, never lost
    run.adopt(stage, owner)
    return True


def take_shared(run: RunDir, shared: dict[str, str]) -> None:
    """A job's first step in a study run: take each shared stage its owner has finished, under
    the run's lock (tasks of one array start together). One not finished is left; the job's input
    check then names it if the job needs it."""
    if not shared:
        return
    from jobs.pipeline import build_stages, stage_fingerprints
    from jobs.runner import load_run_config
    from jobs.units import run_lock

    with run_lock(run):
        cfg = load_run_config(run)
        stages = {stage.name: stage for stage in build_stages(cfg)}
        prints = stage_fingerprints(cfg, list(stages.values()))
        for name, owner in shared.items():
            take_when_finished(run, name, prints[name], stages[name].shards(cfg), RunDir(Path(owner)))


def shared_inputs(stages: list[Stage], names: tuple[str, ...], shared: dict[str, RunDir]) -> tuple[str, ...]:
    """The shared stages the stages `names` read, directly or through other shared stages (a
    run that takes head scores also takes the detection they were merged from), in graph order."""
    by_name = {stage.name: stage for stage in stages}
    found: set[str] = set()
    todo = [dep for name in names for dep in by_name[name].depends]
    while todo:
        dep = todo.pop()
        if dep in shared and dep not in found:
            found.add(dep)
            todo.extend(by_name[dep].depends)
    return tuple(stage.name for stage in stages if stage.name in found)


def owner_jobs(owner: RunDir, stages: dict[str, tuple[str, int]]) -> dict[str, list[str]]:
    """Per stage the owner computes (name -> (fingerprint, shards)), the owner's jobs a run waits
    for before taking it: none once the owner has finished it, else its jobs of that stage still
    queued or running (one scheduler query for all). UserError when the owner neither has a stage
    nor will."""
    from jobs.status import run_status

    todo = {name for name, (fingerprint, shards) in stages.items()
            if len(owner.done_shards(name, fingerprint)) != shards}
    statuses = {status.name: status for status in run_status(owner)[0]} if todo else {}
    waits = {name: [] for name in stages}
    for name in todo:
        states = statuses[name].states if name in statuses else []
        waits[name] = sorted({s.job_id for s in states if s.state in ("running", "pending") and s.job_id})
        if not waits[name]:
            raise UserError(f"stage {name} is computed by {owner.root}, which has it neither done nor queued; "
                            f"resubmit that run first (`retmask study` resubmits a study's runs in order)")
    return waits
