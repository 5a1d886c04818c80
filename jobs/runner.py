"""What a job runs: one shard of one stage, read from and written to the run directory."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from submitit.helpers import Checkpointable

from jobs.pipeline import build_stages, stage_fingerprints
from jobs.schedulers.base import task_cpus
from retmask.claims import this_attempt
from retmask.config import ExperimentConfig, read_saved_config, save_config
from retmask.rundir import RunDir


def record_config(cfg: ExperimentConfig) -> RunDir:
    """Write the resolved config into its run directory, keeping a different earlier one."""
    run = RunDir(cfg.run_dir)
    previous = run.config_path.read_text() if run.config_path.is_file() else None
    save_config(cfg, run.config_path)
    if previous is not None and previous != run.config_path.read_text():
        history = run.root / "superseded" / f"config-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
        history.parent.mkdir(parents=True, exist_ok=True)
        history.write_text(previous)
    return run


def load_run_config(run: RunDir) -> ExperimentConfig:
    """The resolved config saved in the run directory (paths already resolved)."""
    return read_saved_config(run.config_path)


FAULTS_FILE = "inject_faults.json"


def inject_fault(run: RunDir, stage: str, shard: int) -> None:
    """Fail this shard once if the run's fault-injection file names it (for testing resume).

    The entry is removed before failing, so a resubmitted shard runs normally.
    """
    import fcntl
    import json

    from retmask.io import write_json

    path = run.root / FAULTS_FILE
    if not path.is_file():
        return
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        faults = json.loads(path.read_text()) if path.is_file() else []
        key = f"{stage}:{shard}"
        if key not in faults:
            return
        write_json(path, [f for f in faults if f != key])
    raise RuntimeError(f"fault injected into {key} by {path}")


def _prepare(threads: int) -> None:
    """`threads` caps torch's CPU threads: shards sharing a machine would otherwise each start one
    thread per core and slow each other down many times over."""
    threads = threads or task_cpus()
    if threads:
        import torch

        torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local paths; never reach for a hub


def _run_one(run: RunDir, cfg: ExperimentConfig, stages, prints: dict[str, str], stage_name: str, shard: int) -> str:
    def finished() -> bool:
        return shard in run.done_shards(stage_name, prints[stage_name])

    if finished():
        return "already done"
    stage = next(s for s in stages if s.name == stage_name)
    claim, mine = run.claim(stage_name, shard), this_attempt(current_job_id())
    if not claim.take(mine, lambda other: attempt_alive(run, other), finished):
        return "done by another attempt"  # it held the shard while this one waited: nothing written here
    run.attempts[(stage_name, shard)] = mine
    try:
        inject_fault(run, stage_name, shard)
        started = time.perf_counter()
        stage.function()(cfg, run, shard)
        claim.check(mine)  # still this attempt's shard: else another took it over, and this one marks nothing
        run.mark_done(stage_name, shard, prints[stage_name], time.perf_counter() - started)
    finally:
        claim.release(mine)
        run.attempts.pop((stage_name, shard), None)
    return "done"


def current_job_id() -> str:
    """This task's id as its scheduler's job environment gives it (submitit's, e.g. 123_4 for an
    array task); "" outside a scheduler's job."""
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except Exception:  # noqa: BLE001 - no scheduler job here: a local shard
        return ""


def attempt_alive(run: RunDir, attempt) -> bool:
    """Whether another attempt holding a shard still runs: its process, on this host; else its job,
    as the run's scheduler says (unknown: taken to run, the safe side)."""
    from jobs.schedulers import scheduler_of_run
    from jobs.schedulers.base import ACTIVE
    from retmask.claims import process_alive_here

    here = process_alive_here(attempt)
    if here is not None:
        return here
    scheduler = scheduler_of_run(run.read_manifest())
    if scheduler is None or not attempt.job_id:
        return True
    state = scheduler.states([attempt.job_id])[0].get(attempt.job_id, {}).get("state")
    return state is None or state in ACTIVE


def run_shard(run_root: str, stage_name: str, shard: int, threads: int = 0) -> str:
    """Run one shard and mark it done; a shard already done under the same fingerprint is skipped."""
    _prepare(threads)
    run = RunDir(Path(run_root))
    cfg = load_run_config(run)
    stages = build_stages(cfg)
    return _run_one(run, cfg, stages, stage_fingerprints(cfg, stages), stage_name, shard)


def run_light_stages(run: RunDir, names: tuple[str, ...] | list[str], only_when_ready: bool) -> None:
    """Light stages run inside a job (jobs/units.py), in order, under the run's lock: the first job
    computes each, the others find it done. With `only_when_ready`, a stage whose inputs are not
    all done yet is left to the job that completes them."""
    from jobs.units import run_lock

    if not names:
        return
    with run_lock(run):
        cfg = load_run_config(run)  # read under the lock: the same config the stages were planned on
        stages = build_stages(cfg)
        prints = stage_fingerprints(cfg, stages)
        by_name = {stage.name: stage for stage in stages}
        for name in names:
            if only_when_ready and not all(_complete(run, by_name[dep], cfg, prints) for dep in by_name[name].depends):
                continue
            _run_one(run, cfg, stages, prints, name, 0)


def _complete(run: RunDir, stage, cfg: ExperimentConfig, prints: dict[str, str]) -> bool:
    return len(run.done_shards(stage.name, prints[stage.name])) == stage.shards(cfg)


def check_upstream(run: RunDir, names: tuple[str, ...] | list[str]) -> None:
    """A job starts only on complete inputs, whatever its scheduler's dependency released it (PBS
    waits for an earlier array as a whole, ended or not): else it fails, naming what is missing."""
    if not names:
        return
    cfg = load_run_config(run)
    stages = build_stages(cfg)
    prints = stage_fingerprints(cfg, stages)
    for stage in stages:
        if stage.name in names and not _complete(run, stage, cfg, prints):
            done = len(run.done_shards(stage.name, prints[stage.name]))
            raise RuntimeError(f"upstream stage {stage.name} is not complete ({done} of {stage.shards(cfg)} shards "
                               "done) although the jobs this one waited for have ended; `retmask status` shows "
                               "which failed, `retmask resume` reruns them and this")


def run_unit_task(run_root: str, stage_name: str, shard: int, before=(), after=(), threads: int = 0,
                  waits_for=(), shared: dict[str, str] | None = None) -> str:
    """One task of a scheduling unit: the stages it reads from another run of its study taken,
    its inputs checked, the light stages it needs first, its shard, then the light stages its end
    may make ready."""
    _prepare(threads)
    run = RunDir(Path(run_root))
    take_inputs(run, waits_for, shared or {})
    run_light_stages(run, before, only_when_ready=False)
    result = run_shard(run_root, stage_name, shard, threads)
    run_light_stages(run, after, only_when_ready=True)
    return result


def take_inputs(run: RunDir, waits_for=(), shared: dict[str, str] | None = None) -> None:
    """A job's inputs: the shared stages (stage -> the study run that computes them) taken from
    their owners, then every input checked complete."""
    from jobs.sharing import take_shared

    take_shared(run, shared or {})
    check_upstream(run, tuple(waits_for) + tuple(shared or ()))


class UnitTask(Checkpointable):
    """One task of a scheduling unit as a SLURM job that requeues itself when it nears its time
    limit or is preempted (submitit sends USR2, then resubmits the same call); rerun, it skips what
    is done and continues from what it already wrote: rows for detection and synthesis, the latest
    checkpoint for training."""

    def __init__(self, before: tuple[str, ...] = (), after: tuple[str, ...] = (), waits_for: tuple[str, ...] = (),
                 shared: dict[str, str] | None = None):
        self.before, self.after, self.waits_for = tuple(before), tuple(after), tuple(waits_for)
        self.shared = dict(shared or {})  # stage -> the study run it is taken from

    def __call__(self, run_root: str, stage_name: str, shard: int, threads: int = 0) -> str:
        return run_unit_task(run_root, stage_name, shard, self.before, self.after, threads, self.waits_for,
                             self.shared)
