"""Operating a submitted run from a login node: submit, resume, cancel, logs."""
from __future__ import annotations

from collections import defaultdict

from jobs.profiles import ClusterProfile, check_against_scheduler
from jobs.scheduler import cancel as scancel
from jobs.runner import record_config
from jobs.slurm import SlurmPipeline
from jobs.status import failure_groups, last_error_line, run_status, stderr_path
from retmask.config import ConfigError, ExperimentConfig
from retmask.rundir import RunDir


def dry_run(cfg: ExperimentConfig, run: RunDir, profile: ClusterProfile, until: str | None = None) -> str:
    """Every stage's sbatch script, dependencies named by stage; nothing is written or submitted."""
    pipeline = SlurmPipeline(cfg, run, profile, until=until)
    texts = []
    for stage in pipeline.stages:
        dependency = "afterok:" + ":".join(f"<{d} job>" for d in stage.depends) if stage.depends else None
        shards = stage.shards(cfg)
        texts.append(f"# ===== stage {stage.name}: {shards} shard(s) =====\n"
                     + pipeline.render(stage, shards, dependency))
    return "\n".join(texts)


def submit(cfg: ExperimentConfig, run: RunDir, profile: ClusterProfile, force: bool = False, log=print,
           until: str | None = None) -> dict:
    check_against_scheduler(profile)
    pipeline = SlurmPipeline(cfg, run, profile, log, until=until)
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
           time_factor: float = 1.0, mem_factor: float = 1.0, log=print) -> dict:
    """Resubmit only failed or missing shards and unfinished stages; downstream jobs wait for the new
    ids and for whatever is still queued or running. Refuses outputs of another config unless `force`."""
    manifest = run.read_manifest()
    if manifest.get("executor") != "slurm":
        raise ConfigError(f"{run.root} was not submitted to SLURM; rerun `retmask run` on it to resume locally")
    check_against_scheduler(profile)
    stages, _ = run_status(run)
    # Pending jobs have not started; those behind a failure would wait forever on it. Cancel them
    # all and resubmit them with dependencies on the new jobs. Running jobs are kept and waited for.
    pending = [s.job_id for stage in stages for s in stage.states if s.state in ("pending", "blocked")]
    scancel(pending)
    active: dict[str, set[int]] = defaultdict(set)
    outstanding: dict[str, list[str]] = defaultdict(list)
    updates: dict[str, dict] = {}
    for status in stages:
        previous = manifest["stages"].get(status.name, {}).get("parameters", {})
        for shard in status.states:
            if shard.state == "running":
                active[status.name].add(shard.shard)
                outstanding[status.name].append(shard.job_id)
            elif shard.state == "failed" and shard.failure == "TIMEOUT" and time_factor != 1 and "time" in previous:
                updates.setdefault(status.name, {})["time"] = _scaled(previous["time"], time_factor)
            elif shard.state == "failed" and shard.failure == "OOM" and mem_factor != 1 and "mem" in previous:
                updates.setdefault(status.name, {})["mem"] = _scaled(previous["mem"], mem_factor)
    submitted = [name for name in manifest.get("order", []) if name in manifest["stages"]]
    pipeline = SlurmPipeline(cfg, run, profile, log, until=submitted[-1] if submitted else None)
    plans = pipeline.plan(active, force=force)
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
    scancel(ids)
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
