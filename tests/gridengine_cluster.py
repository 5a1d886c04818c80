"""A real single-host Grid Engine cluster for the tests, started by slurm_templates/local-gridengine/start.sh.

`local_gridengine` is a session fixture: it starts the cluster if needed and, at the end of the
session, stops it only if it was this fixture that started it. Tests are skipped (not failed) only
where the cluster cannot be set up at all: not root, or no apt-get to install Grid Engine with.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# Not taken from tests.conftest: conftest imports this module to offer the fixture.
SCRIPTS = Path(__file__).resolve().parents[1] / "slurm_templates" / "local-gridengine"
START = SCRIPTS / "start.sh"
STOP = SCRIPTS / "stop.sh"
START_TIMEOUT_S = 600  # a first start installs packages
STOP_TIMEOUT_S = 120  # sge_qmaster alone takes about 10 s to shut down


def _skip_unless_possible() -> None:
    if os.geteuid() != 0:
        pytest.skip("local Grid Engine cluster needs root (start.sh installs packages and runs daemons)")
    if shutil.which("apt-get") is None:
        pytest.skip("local Grid Engine cluster needs a Debian-like machine with apt-get")


def _run(script: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), *args],
        check=False,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def local_gridengine_running() -> bool:
    """Whether the cluster of start.sh is up (its daemons alive and queue all.q up in `qstat -f`)."""
    return _run(START, "--status", timeout=60).returncode == 0


def ensure_local_gridengine() -> None:
    """Start the local cluster unless it is up; skip if this machine cannot run it, raise if it fails."""
    _skip_unless_possible()
    done = _run(START, timeout=START_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{START} failed (exit {done.returncode}):\n{done.stdout[-4000:]}")


def stop_local_gridengine() -> None:
    """Delete all jobs and stop the daemons that start.sh recorded."""
    done = _run(STOP, timeout=STOP_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{STOP} failed (exit {done.returncode}):\n{done.stdout[-4000:]}")


@pytest.fixture(scope="session")
def local_gridengine() -> Iterator[None]:
    """A running single-host Grid Engine: queue all.q (one slot per CPU), PE smp, accounting on."""
    _skip_unless_possible()
    was_running = local_gridengine_running()
    try:
        ensure_local_gridengine()
    except Exception:
        if not was_running:  # do not leave a half-started cluster behind (its logs stay)
            _run(STOP, timeout=STOP_TIMEOUT_S)
        raise
    yield
    if not was_running:
        stop_local_gridengine()
