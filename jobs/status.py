"""What a run's shards are doing: done (marker on disk), running, pending, failed (with its class
and last error line) or missing — from the run directory plus one scheduler query."""
from __future__ import annotations

import os
import re
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from jobs.schedulers import scheduler_of_run
from jobs.schedulers.base import ACTIVE, BLOCKED_REASON, FAILURE_CLASS
from retmask.progress import StageRate, format_duration, format_rate, stage_rate
from retmask.rundir import RunDir

ROW_STAGES = ("detect", "synthesize_chosen", "synthesize_rejected")
RECENT_S = 120  # a shard whose progress moved this recently counts as running (a local run has no scheduler)
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*")


@dataclass
class ShardState:
    shard: int
    state: str  # done, running, pending, blocked (behind a failure), failed, missing
    job_id: str | None = None
    failure: str | None = None  # OOM, TIMEOUT, PREEMPTED, NODE_FAIL, CANCELLED, exit code N
    error: str | None = None


@dataclass
class StageStatus:
    name: str
    shards: int
    states: list[ShardState] = field(default_factory=list)
    rows: int | None = None
    progress: StageRate | None = None  # work done of the total, and the pace of the running shards

    def count(self, state: str) -> int:
        return sum(s.state == state for s in self.states)


def _done_markers(run: RunDir, stage: str, fingerprint: str) -> set[int]:
    return run.done_shards(stage, fingerprint) if fingerprint else set()


def _rows_written(run: RunDir, stage: str) -> int:
    folder = run.stage_dir(stage) / "shards"
    if not folder.is_dir():
        return 0
    total = 0
    for entry in os.scandir(folder):
        if entry.name.endswith(".jsonl"):
            with open(entry.path, "rb") as handle:
                total += handle.read().count(b"\n")
    return total


def last_error_line(path: Path) -> str | None:
    """The last line that reads like an error in a log (else its last line)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 20000))
            lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    # A Python exception names the cause; srun's "task 0: Exited with exit code 1" only its effect.
    exceptions = [line for line in lines if EXCEPTION_LINE.match(line)]
    errors = [line for line in lines if ("Error" in line or "error:" in line or "Killed" in line)
              and not line.startswith("srun:")]
    return (exceptions or errors or lines or [None])[-1]


def stderr_path(folder: str | None, job_id: str | None) -> Path | None:
    """A job's stderr; of a job of several tasks (one a node), that of the task that stopped first:
    the others were stopped after it, and their errors tell only that."""
    if not folder or not job_id:
        return None
    first = Path(folder) / f"{job_id}_0_log.err"
    task = re.compile(re.escape(job_id) + r"_\d+_log\.err")
    tasks = [path for path in Path(folder).glob(f"{job_id}_*_log.err") if task.fullmatch(path.name)]
    if len(tasks) < 2:
        return first
    return min(tasks, key=lambda path: (path.stat().st_mtime, path.name))


def run_status(run: RunDir, query_scheduler: bool = True) -> tuple[list[StageStatus], str]:
    manifest = run.read_manifest()
    stages = manifest.get("stages", {})
    done_shards = {name: _done_markers(run, name, entry.get("fingerprint", "")) for name, entry in stages.items()}
    # The scheduler is asked about unfinished shards only: a finished one may have run elsewhere (a
    # run taken locally through its pairs, then submitted), under an id this scheduler refuses. And
    # about the jobs of a light stage still to run, whose own shards may be done before it.
    hosting = {host for name, entry in stages.items() if entry.get("runs_in")
               and len(done_shards[name]) < entry.get("shards", 0) for host in entry["runs_in"]}
    job_ids = [job for name, entry in stages.items() for shard, job in entry.get("job_ids", {}).items()
               if int(shard) not in done_shards[name] or name in hosting]
    scheduler = scheduler_of_run(manifest) if query_scheduler else None
    states, source = scheduler.states(job_ids) if scheduler and job_ids else ({}, "none")
    local_alive = _local_driver_alive(manifest)
    if local_alive:
        source = "the local run's process"
    result = []
    owners: dict[str, dict[str, StageStatus]] = {}
    for name in manifest.get("order", list(stages)):
        entry = stages.get(name, {})
        status = StageStatus(name, entry.get("shards", 0))
        done = done_shards.get(name, set())
        if entry.get("shared_from") and len(done) < status.shards:
            # taken from another run of the study once its jobs there end: as far as it is there
            owner = entry["shared_from"]
            if owner not in owners:
                owners[owner] = {s.name: s for s in run_status(RunDir(owner), query_scheduler)[0]}
            there = owners[owner].get(name)
            status.states = [ShardState(k, "done" if k in done else there.states[k].state
                                        if there and k < len(there.states) else "missing")
                             for k in range(status.shards)]
            result.append(status)
            continue
        local_failures = entry.get("failed", {})
        damaged = run.damaged_shards(name, entry.get("fingerprint", "")) if entry.get("fingerprint") else {}
        for shard in range(status.shards):
            job_id = entry.get("job_ids", {}).get(str(shard))
            folder = entry.get("log_folders", {}).get(str(shard))
            if shard in done:
                status.states.append(ShardState(shard, "done", job_id))
                continue
            scheduler_state = states.get(job_id, {}).get("state") if job_id else None
            if shard in damaged and scheduler_state not in ACTIVE:  # cut or changed since, and no job redoing it
                status.states.append(ShardState(shard, "failed", job_id, "DAMAGED", damaged[shard]))
                continue
            if scheduler_state in ("PENDING", "CANCELLED") and states[job_id].get("reason") == BLOCKED_REASON:
                # waits on a failed upstream shard, or was cancelled for it by a site that sets
                # kill_invalid_depend: `retmask resume` resubmits it behind the new job
                status.states.append(ShardState(shard, "blocked", job_id, BLOCKED_REASON))
            elif job_id is None and entry.get("runs_in"):
                status.states.append(ShardState(shard, "hosted"))  # read once every job's state is known
            elif scheduler_state in ACTIVE:
                kind = "pending" if scheduler_state == "PENDING" else "running"
                status.states.append(ShardState(shard, kind, job_id))
            elif scheduler_state in FAILURE_CLASS or str(shard) in local_failures or scheduler_state == "COMPLETED":
                exit_code = states.get(job_id, {}).get("exit_code", "")
                failure = FAILURE_CLASS.get(scheduler_state) or (f"exit code {exit_code}" if exit_code else "FAILED")
                if failure == "FAILED" and exit_code and exit_code != "0:0":
                    failure = f"exit code {exit_code.split(':')[0]}"
                error = local_failures.get(str(shard)) or last_error_line(stderr_path(folder, job_id) or Path("/"))
                status.states.append(ShardState(shard, "failed", job_id, failure, error))
            elif local_alive:  # a local run still going: its started shards run, the others wait
                status.states.append(ShardState(shard, "running" if job_id else "pending", job_id))
            else:
                status.states.append(ShardState(shard, "missing", job_id))
        if name in ROW_STAGES:
            status.rows = _rows_written(run, name)
        status.progress = _stage_progress(run, status)
        result.append(status)
    active = {job_id for job_id, state in states.items() if state.get("state") in ACTIVE}
    for status in result:
        for shard in status.states:
            if shard.state == "hosted":
                shard.state = _hosted_state(result, stages[status.name]["runs_in"], active)
    _block_behind_failures(result, {name: entry.get("depends", []) for name, entry in stages.items()})
    return result, source


def _block_behind_failures(result: list[StageStatus], depends: dict[str, list[str]]) -> None:
    """A pending shard with a failed or blocked stage anywhere upstream is blocked: the scheduler
    names only the first job behind a failure (DependencyNeverSatisfied), while the jobs behind
    that one wait on a job that never ends and look merely pending."""
    broken = {status.name for status in result if any(s.state in ("failed", "blocked") for s in status.states)}
    if not broken:
        return
    for status in result:
        upstream, todo = set(), list(depends.get(status.name, []))
        while todo:
            name = todo.pop()
            if name not in upstream:
                upstream.add(name)
                todo.extend(depends.get(name, []))
        if upstream & broken:
            for shard in status.states:
                if shard.state == "pending":
                    shard.state, shard.failure = "blocked", BLOCKED_REASON


def _local_driver_alive(manifest: dict) -> bool:
    """Whether the process running a local run (recorded in its manifest) still runs, here."""
    driver = manifest.get("driver") or {}
    if manifest.get("executor") != "local" or driver.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(driver["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return False
    return True


def local_driver(manifest: dict) -> str | None:
    """The other process running this run on this machine ("pid N on HOST"), if one still runs."""
    if not _local_driver_alive(manifest) or int(manifest["driver"]["pid"]) == os.getpid():
        return None
    return f"pid {manifest['driver']['pid']} on {manifest['driver']['host']}"


def _stage_progress(run: RunDir, status: StageStatus) -> StageRate | None:
    """From the shards' own progress files: running shards are those the scheduler says run, or,
    without one (a local run watched from another terminal), those that reported recently."""
    progresses = run.stage_progress(status.name)
    running = {s.shard for s in status.states if s.state == "running"}
    recent = time.time() - RECENT_S
    return stage_rate(progresses.values(), [p for shard, p in progresses.items()
                                            if shard in running or (not p.finished and p.updated > recent)])


def _hosted_state(stages: list[StageStatus], hosts: list[str], active_jobs: set[str]) -> str:
    """A light stage runs inside the jobs of its hosts (jobs/units.py): it is as far as they are.
    A host's job still running after its own shard is done is computing it (a stage run after)."""
    shards = [shard for stage in stages if stage.name in hosts for shard in stage.states]
    if any(shard.state == "done" and shard.job_id in active_jobs for shard in shards):
        return "running"
    states = {shard.state for shard in shards}
    for state in ("running", "pending", "blocked"):
        if state in states:
            return "pending" if state == "running" else state
    return "missing"


def format_status(stages: list[StageStatus], source: str) -> str:
    header = (f"{'stage':<22}{'shards':>7}{'done':>7}{'running':>9}{'pending':>9}{'blocked':>9}{'failed':>8}"
              f"{'missing':>9}{'rows':>9}{'rate':>18}{'ETA':>8}")
    lines = [header, "-" * len(header)]
    for s in stages:
        rows = "" if s.rows is None else str(s.rows)
        rate = f"{format_rate(s.progress.rate)} {s.progress.unit}/s" if s.progress and s.progress.rate else ""
        eta = format_duration(s.progress.eta_s) if s.progress and s.progress.eta_s is not None else ""
        lines.append(f"{s.name:<22}{s.shards:>7}{s.count('done'):>7}{s.count('running'):>9}{s.count('pending'):>9}"
                     f"{s.count('blocked'):>9}{s.count('failed'):>8}{s.count('missing'):>9}{rows:>9}{rate:>18}{eta:>8}")
    failures = [(s.name, f) for s in stages for f in s.states if f.state == "failed"]
    if failures:
        lines += ["", "failed shards:"]
        for name, f in failures[:50]:
            lines.append(f"  {name} shard {f.shard} (job {f.job_id}): {f.failure}: {f.error or 'no log line'}")
        if len(failures) > 50:
            lines.append(f"  ... and {len(failures) - 50} more (retmask logs RUN --failed)")
    lines.append(f"\nscheduler states from: {source}" + (" (disk state only)" if source == "none" else ""))
    return "\n".join(lines)


def failure_groups(stages: list[StageStatus]) -> Counter:
    return Counter(f.error or "no log line" for s in stages for f in s.states if f.state == "failed")


def watch(run: RunDir, interval_s: float, query_scheduler: bool = True, write=print, terminal: bool = False,
          sleep=time.sleep) -> list[StageStatus]:
    """The status table every `interval_s` seconds (one scheduler query each), until no shard is
    running or pending and none has moved lately; on a terminal each table replaces the last.
    Returns the last statuses."""
    while True:
        stages, source = run_status(run, query_scheduler)
        text = f"{time.strftime('%H:%M:%S')}  {run.root}\n" + format_status(stages, source)
        write(("\x1b[H\x1b[J" if terminal else "") + text + ("" if terminal else "\n"))
        if not _moving(stages):
            return stages
        sleep(interval_s)


def _moving(stages: list[StageStatus]) -> bool:
    return any(shard.state in ("running", "pending") for stage in stages for shard in stage.states) or \
        any(stage.progress is not None and stage.progress.rate for stage in stages)
