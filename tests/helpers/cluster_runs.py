"""What the end-to-end tests on a real local scheduler share: the unfaulted local run they compare
with, and waiting until a submitted run has nothing queued or running."""
from __future__ import annotations

import time

from jobs.local import LocalPipeline
from jobs.runner import record_config
from jobs.status import format_status, run_status
from retmask.config import load_config
from retmask.rundir import RunDir
from tests.conftest import REPO


def local_tiny_run(run_dir, until: str = "pairs") -> RunDir:
    """configs/tiny.yaml run locally up to `until`: the outputs a cluster run must reproduce."""
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    cfg.run_dir = str(run_dir)
    run = record_config(cfg)
    LocalPipeline(cfg, run, log=lambda line: None, until=until).execute(max_parallel=2)
    return run


def wait_until_idle(run: RunDir, timeout: float = 600, settle_s: float = 0, watch=lambda run: None):
    """(stages, source, states seen) once no job of the run is pending or running; `settle_s`
    re-reads after that long, for accounting that lags the queue (sacct behind squeue). `watch(run)`
    is called at every poll (checks that hold while the jobs run)."""
    seen: set[str] = set()
    deadline = time.time() + timeout
    while time.time() < deadline:
        watch(run)
        stages, source = run_status(run)
        states = {s.state for stage in stages for s in stage.states}
        seen |= states
        if not states & {"running", "pending"}:
            if not settle_s:
                return stages, source, seen
            time.sleep(settle_s)
            stages, source = run_status(run)
            if not {s.state for stage in stages for s in stage.states} & {"running", "pending"}:
                return stages, source, seen
        time.sleep(0.25)
    raise TimeoutError(format_status(*run_status(run)))
