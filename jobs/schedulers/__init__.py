"""Batch schedulers behind one interface (base.Scheduler): SLURM, Grid Engine and PBS
Professional; the profile's `kind` picks one."""
from __future__ import annotations

from jobs.schedulers.base import Scheduler


def scheduler_for(profile) -> Scheduler:
    from retmask.config import ConfigError

    if profile.kind == "slurm":
        from jobs.schedulers.slurm import SlurmScheduler

        return SlurmScheduler(profile)
    if profile.kind == "gridengine":
        from jobs.schedulers.gridengine import GridEngineScheduler

        return GridEngineScheduler(profile)
    if profile.kind == "pbs":
        from jobs.schedulers.pbs import PBSScheduler

        return PBSScheduler(profile)
    raise ConfigError(f"profile kind {profile.kind!r} has no batch scheduler; it runs locally (`retmask run`)")


def scheduler_of_run(manifest: dict) -> Scheduler | None:
    """The scheduler a run was submitted to, from its manifest (None for a local run)."""
    from jobs.profiles import ClusterProfile
    from retmask.config import from_dict

    kind = manifest.get("executor")
    if kind in (None, "local"):
        return None
    return scheduler_for(from_dict(ClusterProfile, {**manifest.get("profile", {}), "kind": kind}, key="the run's profile"))
