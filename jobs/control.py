"""Operating a submitted run from a login node: submit, resume, cancel, logs."""
from __future__ import annotations

import fcntl
import os
import shlex
import socket
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from jobs.cluster import ClusterPipeline
from jobs.profiles import ClusterProfile
from jobs.runner import record_config
from jobs.schedulers import scheduler_for, scheduler_of_run
from jobs.status import failure_groups, last_error_line, run_status, stderr_path
from retmask.config import ConfigError, ExperimentConfig
from retmask.errors import UserError
from retmask.rundir import RunDir


def dry_run(cfg: ExperimentConfig, run: RunDir, profile: ClusterProfile, until: str | None = None) -> str:
    """The job graph, then every job's script, dependencies named by job; nothing is
    written or submitted."""
    from jobs.units import direct_waits

    from jobs.evaluation_view import evaluation_lines

    pipeline = ClusterPipeline(cfg, run, profile, until=until)
    texts = [pipeline.graph(), *evaluation_lines(cfg, run)]
    for unit in pipeline.units:
        waits = direct_waits(pipeline.units, unit)
        dependency = [f"<{name} job>" for name in waits] if waits else None
        shards = unit.stage.shards(cfg)
        texts.append(f"# ===== job {unit.name}: {shards} task(s) =====\n" + pipeline.render(unit, shards, dependency))
    return "\n".join(texts)


@contextmanager
def one_submitter(run: RunDir) -> Iterator[None]:
    """One `submit` or `resume` at a time on a run directory: two at once would each queue the
    jobs the other has not recorded yet. An flock (Linux emulates it across NFS clients) on a file
    that names its holder; a run directory made only for the lock is removed again on refusal."""
    created = not run.root.exists()
    run.root.mkdir(parents=True, exist_ok=True)
    path = run.root / ".submit.lock"
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(f"{holder} is submitting or resuming {run.root} right now; wait for it to finish, then "
                            f"follow with `retmask status {shlex.quote(str(run.root))}`") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"retmask (pid {os.getpid()} on {socket.gethostname()})")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
        if created and [entry.name for entry in run.root.iterdir()] == [path.name]:
            path.unlink()
            run.root.rmdir()


def live_jobs(run: RunDir) -> list[str]:
    """Job ids of the run still queued or running, as the scheduler says."""
    if not run.manifest_path.is_file():
        return []
    stages, _ = run_status(run)
    return [s.job_id for stage in stages for s in stage.states
            if s.state in ("running", "pending", "blocked") and s.job_id]


def refuse_a_second_driver(run: RunDir, mine: str) -> None:
    """One driver per run directory: a local run (`mine` "local") beside its cluster jobs, or a
    submission (`mine` "cluster") beside a live local run, would write the same shards twice."""
    from jobs.status import local_driver

    quoted = shlex.quote(str(run.root))
    driver = local_driver(run.read_manifest())
    if driver is not None:
        raise UserError(f"{run.root} is being run on this machine by {driver}; let it finish (or stop it) before "
                        f"{'running' if mine == 'local' else 'submitting'} it again; `retmask status {quoted}` shows it")
    if mine == "local" and scheduler_of_run(run.read_manifest()) is not None and (live := live_jobs(run)):
        raise UserError(f"{run.root} has {len(live)} job(s) queued or running on its cluster ({', '.join(live[:5])}"
                        f"{', ...' if len(live) > 5 else ''}); a local run beside them would write the same shards. "
                        f"Follow them with `retmask status {quoted}`, resubmit what failed with `retmask resume "
                        f"{quoted}`, or withdraw them with `retmask cancel {quoted}` first")


def submit(cfg: ExperimentConfig, run: RunDir, profile: ClusterProfile, force: bool = False, log=print,
           until: str | None = None, shared: dict[str, RunDir] | None = None) -> dict:
    """Submit the run's stages (up to `until`); `shared`: a study run's stages another run of the
    study computes (jobs/sharing.py)."""
    scheduler_for(profile).check(profile)
    with one_submitter(run):
        refuse_a_second_driver(run, "cluster")
        live = live_jobs(run)
        if live:
            quoted = shlex.quote(str(run.root))
            raise UserError(f"{run.root} already has {len(live)} job(s) queued or running ({', '.join(live[:5])}"
                            f"{', ...' if len(live) > 5 else ''}); a second submit would run them twice. Follow them "
                            f"with `retmask status {quoted}`, resubmit what failed with `retmask resume {quoted}`, "
                            f"or withdraw them with `retmask cancel {quoted}` first")
        pipeline = ClusterPipeline(cfg, run, profile, log, until=until, shared=shared)
        plans = pipeline.plan(force=force)  # refuses outputs of another config before anything is written
        if not any(plan.todo for plan in plans):
            log("every stage is already done for this config; nothing submitted")
            return run.read_manifest()
        # Only now the config the jobs read: jobs still queued from an earlier submission read it too.
        record_config(cfg)
        return pipeline.submit(plans)


def _scaled(value: str | int, factor: float) -> str | int:
    if isinstance(value, int):
        return int(value * factor)
    number = float(value.rstrip("GBMK"))
    return f"{int(number * factor)}{value[len(str(value).rstrip('GBMK')):]}"


def resume(cfg: ExperimentConfig, run: RunDir, profile: ClusterProfile, force: bool = False,
           time_factor: float = 1.0, mem_factor: float = 1.0, log=print,
           shared: dict[str, RunDir] | None = None) -> dict:
    """Resubmit only failed or missing shards and unfinished stages; downstream jobs wait for the new
    ids and for whatever is still queued or running. Refuses outputs of another config unless `force`.
    `shared`: a study run's stages other runs compute (default: as its first submission recorded)."""
    with one_submitter(run):
        return _resume(cfg, run, profile, force, time_factor, mem_factor, log, shared)


def _resume(cfg: ExperimentConfig, run: RunDir, profile: ClusterProfile, force: bool, time_factor: float,
            mem_factor: float, log, shared: dict[str, RunDir] | None) -> dict:
    manifest = run.read_manifest()
    if scheduler_of_run(manifest) is None:
        raise ConfigError(f"{run.root} was not submitted to a cluster; rerun `retmask run` on it to resume locally")
    scheduler = scheduler_for(profile)
    scheduler.check(profile)
    stages, _ = run_status(run)
    active: dict[str, set[int]] = defaultdict(set)
    outstanding: dict[str, list[str]] = defaultdict(list)
    updates: dict[str, dict] = {}
    for status in stages:
        previous = manifest["stages"].get(status.name, {}).get("parameters", {})
        for shard in status.states:
            if shard.state == "running" and shard.job_id:  # not a stage another run of a study computes
                active[status.name].add(shard.shard)
                outstanding[status.name].append(shard.job_id)
            elif shard.state == "failed" and shard.failure == "TIMEOUT" and time_factor != 1 and "time" in previous:
                updates.setdefault(status.name, {})["time"] = _scaled(previous["time"], time_factor)
            elif shard.state == "failed" and shard.failure == "OOM" and mem_factor != 1 and "mem" in previous:
                updates.setdefault(status.name, {})["mem"] = _scaled(previous["mem"], mem_factor)
    submitted = [name for name in manifest.get("order", []) if name in manifest["stages"]]
    pipeline = ClusterPipeline(cfg, run, profile, log, until=submitted[-1] if submitted else None, shared=shared)
    plans = pipeline.plan(active, force=force)  # every refusal before any job is cancelled or anything written
    # Pending jobs have not started; those behind a failure would wait forever on it. Cancel them
    # all and resubmit them with dependencies on the new jobs. Running jobs are kept and waited for.
    # Failed ones are withdrawn too, after them: Grid Engine keeps a failed task queued in error
    # state, and deleting it first would release the jobs held behind it.
    for states in (("pending", "blocked"), ("failed",)):
        scheduler.cancel([s.job_id for stage in stages for s in stage.states if s.state in states and s.job_id])
    record_config(cfg)  # the config the resubmitted jobs read: a study's may have changed (the earlier one is kept)
    if not any(plan.todo for plan in plans):
        log("nothing to resubmit: every shard is done, queued or running")
        return manifest
    for name, change in updates.items():
        log(f"[{name}] resubmitting with {change}")
    return pipeline.submit(plans, outstanding, parameter_updates=updates)


def cancel(run: RunDir, log=print) -> list[str]:
    stages, _ = run_status(run)
    ids = [s.job_id for stage in stages for s in stage.states
           if s.state in ("running", "pending", "blocked") and s.job_id]
    scheduler = scheduler_of_run(run.read_manifest())
    if scheduler and ids:
        scheduler.cancel(ids)
    log(f"cancelled {len(ids)} job(s)" + (f": {', '.join(ids)}" if ids else ""))
    return ids


def failed_logs(run: RunDir, tail: int = 20) -> str:
    """stderr tails of failed shards, grouped by their last error line."""
    stages, _ = run_status(run)
    manifest = run.read_manifest()["stages"]
    groups: dict[str, list[str]] = defaultdict(list)
    for status in stages:
        for shard in status.states:
            if shard.state != "failed":
                continue
            folder = manifest[status.name].get("log_folders", {}).get(str(shard.shard))
            path = stderr_path(folder, shard.job_id)
            text = path.read_text(errors="replace").splitlines()[-tail:] if path and path.is_file() else []
            groups[shard.error or last_error_line(path) or "no log"].append(
                f"--- {status.name} shard {shard.shard} (job {shard.job_id}, {shard.failure}): {path}\n"
                + "\n".join(text))
    if not groups:
        return "no failed shard"
    counts = failure_groups(stages)
    out = []
    for error, entries in groups.items():
        out.append(f"=== {counts.get(error, len(entries))} shard(s): {error}")
        out.extend(entries)
    return "\n".join(out)
