"""Run the whole stage graph on this machine through submitit's LocalExecutor.

LocalExecutor starts real processes but knows no dependencies and no parallelism cap, so this
module orders shards by the graph and keeps at most `max_parallel` running at once. Shards already
done under the current fingerprint are skipped; outputs of another fingerprint are moved aside.
"""
from __future__ import annotations

import multiprocessing.connection
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from jobs.forked import ForkedExecutor
from jobs.pipeline import Stage, build_stages, stage_fingerprints
from jobs.progress_view import ProgressView, stage_line
from jobs.runner import run_shard
from jobs.sharing import take_when_finished
from jobs.status import last_error_line
from retmask.config import ConfigError, ExperimentConfig
from retmask.rundir import RunDir

POLL_SECONDS = 0.2
IDLE_POLL_SECONDS = 0.5


class PipelineFailed(RuntimeError):
    pass


class PipelineStopped(RuntimeError):
    """Raised inside a pipeline whose `stop` event was set: its running shards are cancelled."""


def runs_vllm_in_process(cfg: ExperimentConfig, stage: str) -> bool:
    """Whether the stage's shards start a vLLM engine in their own process (it spawns processes of
    its own, which a forked shard would not give it cleanly)."""
    return ((stage.startswith("synthesize_") and cfg.synthesis.backend == "vllm")
            or (stage == "judge" and cfg.judge.backend == "vllm"))


def upstream_of(stages: list[Stage], target: str) -> list[Stage]:
    """`target` and every stage it depends on, in graph order."""
    by_name = {stage.name: stage for stage in stages}
    if target not in by_name:
        raise ConfigError(f"no stage {target!r}; stages are {', '.join(by_name)}")
    wanted, todo = set(), [target]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(by_name[name].depends)
    return [stage for stage in stages if stage.name in wanted]


def _wait_for_a_shard(running, seconds: float) -> None:
    """Sleep `seconds`, or less when a forked shard ends first: a rehearsal runs hundreds of
    sub-second shards, and each would otherwise hold its slot to the next poll. With no shard of its
    own running (a study's run waiting for a slot or for a stage another run computes) it sleeps
    IDLE_POLL_SECONDS: a study's dozens of waiting runs would otherwise take a core polling."""
    sentinels = [job.sentinel for _, _, job in running if hasattr(job, "sentinel")]
    if sentinels:
        multiprocessing.connection.wait(sentinels, timeout=seconds)
    else:
        time.sleep(seconds if running else IDLE_POLL_SECONDS)


@dataclass
class StageProgress:
    stage: Stage
    fingerprint: str
    shards: int
    done: set[int]
    failed: dict[int, str] = field(default_factory=dict)
    job_ids: dict[int, str] = field(default_factory=dict)
    log_folders: dict[int, str] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None
    skipped: bool = False
    owner: RunDir | None = None  # the run that computes this stage for us (until taken)
    shared_from: str | None = None  # the run directory this stage's outputs were taken from

    @property
    def complete(self) -> bool:
        return len(self.done) == self.shards

    def record(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "depends": list(self.stage.depends),
            "shards": self.shards,
            "done": sorted(self.done),
            "failed": {str(k): v for k, v in sorted(self.failed.items())},
            "job_ids": {str(k): v for k, v in sorted(self.job_ids.items())},
            "log_folders": {str(k): v for k, v in sorted(self.log_folders.items())},
            "state": "done" if self.complete else ("failed" if self.failed else "pending"),
            "skipped": self.skipped,
            "shared_from": self.shared_from,
            "wall_seconds": round(self.finished - self.started, 2) if self.started and self.finished else None,
        }


class LocalPipeline:
    def __init__(self, cfg: ExperimentConfig, run: RunDir, timeout_min: int = 1440, log=print,
                 until: str | None = None, owners: dict[str, RunDir] | None = None,
                 owner_ended: Callable[[RunDir], bool] = lambda run: False, cores: int | None = None,
                 slots: threading.Semaphore | None = None, stop: threading.Event | None = None,
                 view: ProgressView | None = None, fork: bool = True):
        """Pipelines of a study run side by side in threads; for them:
        `owners`: stage -> the run directory that computes it (the same fingerprint); this run waits
        for that stage there and takes its outputs instead of computing it. `owner_ended(run)`: that
        run has stopped (a stage it never finished then fails here). `cores`: the cores this
        pipeline's shards share (default: the machine's). `slots`: processes all pipelines may run
        at once. `stop`: set to cancel this pipeline's shards and end it. `view`: where progress is
        shown (default: plain lines through `log`). `fork`: shards are forks of a warm process
        (jobs/forked.py), else fresh interpreters (submitit's LocalExecutor)."""
        self.cfg = cfg
        self.timeout_min = timeout_min
        self.run = run
        self.view = view or ProgressView(write=log)
        self.log = self.view.log
        self.cores = cores or os.cpu_count() or 1
        self.slots = slots
        self.stop = stop
        self.owner_ended = owner_ended
        self.fork = fork
        owners = owners or {}
        all_stages = build_stages(cfg)
        prints = stage_fingerprints(cfg, all_stages)
        self.stages = upstream_of(all_stages, until) if until else all_stages
        self.progress: dict[str, StageProgress] = {}
        for stage in self.stages:
            if run.stale_fingerprints(stage.name, prints[stage.name]):  # any shard of another config: all aside
                moved = run.supersede(stage.name)
                self.log(f"[{stage.name}] config changed: earlier outputs kept in {moved}")
            done = run.done_shards(stage.name, prints[stage.name])
            count = stage.shards(cfg)
            progress = StageProgress(stage, prints[stage.name], count, done, skipped=len(done) == count)
            if len(done) < count and stage.name in owners:
                progress.owner = owners[stage.name]
            self.progress[stage.name] = progress
        self._take_shared()

    def _take_shared(self) -> None:
        """Take each shared stage its owner has finished; fail one whose owner stopped without it."""
        for name, p in self.progress.items():
            if p.owner is None:
                continue
            if take_when_finished(self.run, name, p.fingerprint, p.shards, p.owner):
                p.done = self.run.done_shards(name, p.fingerprint)
                p.shared_from, p.owner, p.skipped = str(p.owner.root), None, True
                self.log(f"[{name}] shared: taken from {Path(p.shared_from).name}")
            elif self.owner_ended(p.owner):
                p.failed[0] = f"not computed: {p.owner.root.name}, which computes it, stopped without it"
                p.owner = None

    def _waiting(self) -> bool:
        return any(p.owner is not None for p in self.progress.values())

    def _ready(self, name: str) -> bool:
        return all(self.progress[dep].complete for dep in self.progress[name].stage.depends)

    def _write_manifest(self) -> None:
        self.run.write_manifest({
            "executor": "local",
            "driver": {"host": socket.gethostname(), "pid": os.getpid()},  # status: is this run alive?
            "order": [stage.name for stage in self.stages],
            "updated": time.time(),
            "stages": {name: p.record() for name, p in self.progress.items()},
        })

    def execute(self, max_parallel: int) -> dict[str, StageProgress]:
        attempt = time.strftime("%Y%m%d-%H%M%S")
        executors = {}
        queue = [(p.stage, shard) for p in self.progress.values() if p.owner is None
                 for shard in range(p.shards) if shard not in p.done]
        for p in self.progress.values():
            if p.skipped and not p.shared_from:
                self.log(f"[{p.stage.name}] up to date, skipped")
        running: list[tuple[Stage, int, submitit.Job]] = []
        self._write_manifest()
        try:
            self._loop(queue, running, executors, attempt, max_parallel)
        except BaseException:
            self.view.close()  # Ctrl-C or SIGTERM: stop the shards this run started, then re-raise
            for stage, shard, job in running:
                job.cancel(check=False)
                self.progress[stage.name].failed[shard] = "cancelled"
                if self.slots is not None:
                    self.slots.release()
            self._write_manifest()
            raise
        self.view.close()
        failed = {name: p.failed for name, p in self.progress.items() if p.failed}
        if failed:
            lines = [f"  {name} shard {shard}: {error}" for name, errors in failed.items()
                     for shard, error in errors.items()]
            raise PipelineFailed("stages failed:\n" + "\n".join(lines) +
                                 f"\nlogs under {self.run.root / 'logs'}; rerun the same command to resume")
        return self.progress

    def _loop(self, queue, running, executors, attempt, max_parallel) -> None:
        while queue or running or self._waiting():
            if self.stop is not None and self.stop.is_set():
                raise PipelineStopped(f"{self.run.root}: stopped")
            self._take_shared()
            blocked = any(p.failed for p in self.progress.values())
            while not blocked and len(running) < max_parallel:
                ready = next((item for item in queue if self._ready(item[0].name)), None)
                if ready is None or (self.slots is not None and not self.slots.acquire(blocking=False)):
                    break
                queue.remove(ready)
                stage, shard = ready
                if stage.name not in executors:
                    fresh = not self.fork or runs_vllm_in_process(self.cfg, stage.name)
                    executor = (submitit.LocalExecutor if fresh else ForkedExecutor)(
                        folder=self.run.log_dir(stage.name) / attempt)
                    executor.update_parameters(timeout_min=self.timeout_min)
                    executors[stage.name] = executor
                # Share the cores among the shards that can run now: a stage alone gets them all.
                runnable = len(running) + 1 + sum(self._ready(item[0].name) for item in queue)
                threads = max(1, self.cores // min(max_parallel, runnable))
                job = executors[stage.name].submit(run_shard, str(self.run.root), stage.name, shard, threads)
                progress = self.progress[stage.name]
                progress.job_ids[shard] = str(job.job_id)
                progress.log_folders[shard] = str(executors[stage.name].folder)
                progress.started = progress.started or time.time()
                running.append((stage, shard, job))
                self._write_manifest()
            if blocked and not running:
                break
            _wait_for_a_shard(running, POLL_SECONDS)
            self._show_progress(running)
            for item in [r for r in running if r[2].done()]:
                running.remove(item)
                self._finish(*item)
            failed = any(p.failed for p in self.progress.values())
            if (not running and queue and not failed and not self._waiting()
                    and not any(self._ready(s.name) for s, _ in queue)):
                raise PipelineFailed("no runnable stage: the stage graph has a cycle or a missing dependency")

    def _show_progress(self, running) -> None:
        """One line per stage with running shards, from the progress those shards report."""
        def lines() -> list[str]:
            shards: dict[str, set[int]] = {}
            for stage, shard, _ in running:
                shards.setdefault(stage.name, set()).add(shard)
            now = time.time()
            return [stage_line(name, self.progress[name].shards, len(self.progress[name].done),
                               self.run.stage_progress(name), running_shards, now - self.progress[name].started)
                    for name, running_shards in shards.items()]

        self.view.update(lines)

    def _finish(self, stage: Stage, shard: int, job: submitit.Job) -> None:
        if self.slots is not None:
            self.slots.release()
        progress = self.progress[stage.name]
        try:
            job.result()
        except Exception:  # the job's own traceback is in its log
            progress.failed[shard] = last_error_line(Path(job.paths.stderr)) or "no log"
            self.log(f"[{stage.name}] shard {shard} FAILED: {progress.failed[shard]} (log: {job.paths.stderr})")
        else:
            progress.done.add(shard)
            if progress.complete:
                progress.finished = time.time()
                self.log(f"[{stage.name}] done in {progress.finished - progress.started:.1f}s")
        self._write_manifest()
