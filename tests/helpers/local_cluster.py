"""A real single-host batch scheduler for the tests, started and stopped by the start.sh and
stop.sh of a folder under slurm_templates/ (local-cluster: SLURM; local-gridengine: Grid Engine).

`session_fixture` makes a session fixture of one: it starts the cluster if needed and, at the end
of the session, stops it only if it was this fixture that started it. Tests are skipped (not
failed) only where the cluster cannot be set up at all: not root, or no apt-get to install it with.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[2] / "slurm_templates"
START_TIMEOUT_S = 600  # a first start installs packages
STOP_TIMEOUT_S = 120  # Grid Engine's qmaster alone takes about 10 s to shut down


class LocalCluster:
    def __init__(self, folder: str, what: str):
        self.start, self.stop, self.what = TEMPLATES / folder / "start.sh", TEMPLATES / folder / "stop.sh", what

    def skip_unless_possible(self) -> None:
        if os.geteuid() != 0:
            pytest.skip(f"{self.what} needs root (start.sh installs packages and runs daemons)")
        if shutil.which("apt-get") is None:
            pytest.skip(f"{self.what} needs a Debian-like machine with apt-get")

    def _run(self, script: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(script), *args], check=False, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)

    def running(self) -> bool:
        """Whether the cluster of start.sh is up (its daemons alive and answering)."""
        return self._run(self.start, "--status", timeout=60).returncode == 0

    def ensure(self) -> None:
        """Start the cluster unless it is up; skip if this machine cannot run it, raise if it fails."""
        self.skip_unless_possible()
        done = self._run(self.start, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"{self.start} failed (exit {done.returncode}):\n{done.stdout[-4000:]}")

    def shut_down(self, check: bool = True) -> None:
        """Cancel all jobs and stop the daemons that start.sh recorded."""
        done = self._run(self.stop, timeout=STOP_TIMEOUT_S)
        if check and done.returncode != 0:
            raise RuntimeError(f"{self.stop} failed (exit {done.returncode}):\n{done.stdout[-4000:]}")

    def session(self) -> Iterator[None]:
        self.skip_unless_possible()
        was_running = self.running()
        try:
            self.ensure()
        except Exception:
            if not was_running:  # do not leave a half-started cluster behind (its logs stay)
                self.shut_down(check=False)
            raise
        yield
        if not was_running:
            self.shut_down()
