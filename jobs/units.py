"""Scheduling units: how the stage graph becomes scheduler jobs.

Stages stay the units of work and outputs (fingerprints, done markers, status, resume), but a
queue wait costs hours on a busy cluster and a GPU-less job on a GPU partition is refused or
billed at GPU rates at many sites. So only the heavy stages (GPU work, or sharded) are jobs; each
light stage (one CPU shard, seconds: merge_scores, select_heads, mask, pairs, report...) runs
inside the jobs around it:

- `before`: light stages a job needs, run at its start, once per run: the first task to take the
  run's lock computes them, the others find them done (they are idempotent by their markers);
- `after`: light stages nothing heavy needs (report), run by whichever task finishes their last
  input, under the same lock.

A light stage no job can host (a resume where the host stage is already done) becomes a job of
its own on CPU resources.
"""
from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from jobs.pipeline import Stage
from jobs.profiles import GPU_STAGES
from retmask.config import ExperimentConfig
from retmask.rundir import RunDir


@dataclass(frozen=True)
class Unit:
    stage: Stage  # its shards are the job's tasks
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    waits_for: tuple[str, ...] = ()  # units (by their stage's name) this job starts after

    @property
    def name(self) -> str:
        return self.stage.name

    def stages(self) -> tuple[str, ...]:
        return self.before + (self.stage.name,) + self.after


def is_light(stage: Stage, cfg: ExperimentConfig) -> bool:
    return stage.name not in GPU_STAGES and stage.shards(cfg) == 1


def scheduling_units(stages: list[Stage], cfg: ExperimentConfig, own_jobs: tuple[str, ...] = ()) -> list[Unit]:
    """The jobs for `stages` (in graph order), each heavy stage with the light stages it hosts.
    Light stages named in `own_jobs` are jobs of their own (e.g. on a CPU partition)."""
    by_name = {stage.name: stage for stage in stages}
    order = {stage.name: k for k, stage in enumerate(stages)}
    light = {stage.name for stage in stages if is_light(stage, cfg) and stage.name not in own_jobs}

    def through_light(name: str) -> tuple[set[str], set[str]]:
        """Light stages upstream of `name` reached through light stages only, and the heavy stages
        where that walk stops."""
        lights, heavies, todo = set(), set(), [d for d in by_name[name].depends if d in by_name]
        while todo:
            dep = todo.pop()
            if dep in light:
                if dep not in lights:
                    lights.add(dep)
                    todo.extend(d for d in by_name[dep].depends if d in by_name)
            else:
                heavies.add(dep)
        return lights, heavies

    def sort(names) -> tuple[str, ...]:
        return tuple(sorted(names, key=order.__getitem__))

    heavy = [stage for stage in stages if stage.name not in light]
    befores, waits = {}, {}
    for stage in heavy:
        befores[stage.name], waits[stage.name] = through_light(stage.name)
    hosted = set().union(*befores.values()) if befores else set()

    def feeders(name: str) -> tuple[set[str], set[str]]:
        """Jobs whose end may complete the inputs of light stage `name`, and the unhosted light
        stages between: a hosted light stage is done once any of its hosts has started."""
        hosts, lights, todo = set(), set(), list(by_name[name].depends)
        while todo:
            dep = todo.pop()
            if dep not in by_name:
                continue
            if dep not in light:
                hosts.add(dep)
            elif dep in hosted:
                hosts |= {unit for unit, before in befores.items() if dep in before}
            elif dep not in lights:
                lights.add(dep)
                todo.extend(by_name[dep].depends)
        return hosts, lights

    # Light stages nothing heavy needs run after the jobs that feed them, by the last to end.
    afters: dict[str, set[str]] = {stage.name: set() for stage in heavy}
    homeless = []
    for name in sort(light - hosted):
        hosts, lights = feeders(name)
        if not hosts:
            homeless.append(name)
        # A host another host waits for ends before it: it can never be the last to end.
        ancestors = set().union(*(_ancestors(waits, host) for host in hosts)) if hosts else set()
        for host in hosts - ancestors:
            afters[host] |= {name} | lights
    units = [Unit(stage, sort(befores[stage.name]), sort(afters[stage.name]), sort(waits[stage.name]))
             for stage in heavy]
    # A light stage fed by no heavy stage (only in pipelines cut short): a job of its own.
    units += [Unit(by_name[name], waits_for=()) for name in homeless]
    return sorted(units, key=lambda unit: order[unit.name])


def _ancestors(waits: dict[str, set[str]], job: str) -> set[str]:
    found, todo = set(), list(waits.get(job, ()))
    while todo:
        parent = todo.pop()
        if parent not in found:
            found.add(parent)
            todo.extend(waits.get(parent, ()))
    return found


def direct_waits(units: list[Unit], unit: Unit) -> tuple[str, ...]:
    """The jobs `unit` waits for, less those another of them already waits for: the graph as a
    reader follows it (submission keeps them all; an afterok too many costs nothing)."""
    waits = {u.name: set(u.waits_for) for u in units}
    parents = unit.waits_for
    return tuple(p for p in parents if not any(p in _ancestors(waits, q) for q in parents if q != p))


def critical_waits(units: list[Unit], after: str | None = None) -> int:
    """Scheduler waits on the longest chain of jobs (after the job `after`, when given): each
    dependency is a trip to the back of the queue."""
    by_name = {unit.name: unit for unit in units}
    depth: dict[str, int] = {}

    def waits(name: str) -> int:
        if name not in depth:
            unit = by_name[name]
            parents = [p for p in unit.waits_for if p in by_name and (after is None or _reaches(by_name, p, after))]
            depth[name] = max((waits(p) + 1 for p in parents), default=0)
        return depth[name]

    chains = [waits(unit.name) for unit in units if after is None or _reaches(by_name, unit.name, after)]
    return max(chains, default=0)


def _reaches(by_name: dict[str, Unit], name: str, ancestor: str) -> bool:
    """Whether job `name` is `ancestor` or waits for it, directly or not."""
    if name == ancestor:
        return True
    return any(_reaches(by_name, parent, ancestor) for parent in by_name[name].waits_for if parent in by_name)


@contextmanager
def run_lock(run: RunDir) -> Iterator[None]:
    """The run's lock for light stages run inside jobs: one task computes, the others wait and then
    find the stage done. Linux emulates flock across NFS clients (Lustre needs its flock mount
    option, which shared scratch file systems set)."""
    path = run.root / ".light-stages.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
