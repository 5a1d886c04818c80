"""Long commands a few tests wait for, started as the session starts at the lowest CPU priority.

Most of the suite leaves a core idle (a scheduler's queue, one-threaded steps, process starts).
A command started early at `nice 19` takes what the other tests leave and yields the cores
whenever they want them, so it is mostly done by the time its tests read it: the suite takes
about as long as its other tests rather than their time plus the command's.

Linux shares the CPU between sessions first (autogroups) and by nice only within one, so the
command's own session is given the lowest priority too: otherwise it would take half the cores
from the scheduler jobs and the tests, each in a session of its own.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

LOWEST_PRIORITY = 19
PR_SET_PDEATHSIG = 1


def lower_this_process() -> None:
    """The lowest priority for this process and its session, and its end with its parent (the
    test session) even where that is killed outright, with no teardown to stop it."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.nice(LOWEST_PRIORITY)
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(LOWEST_PRIORITY))
    except OSError:  # a kernel without autogroups shares by nice alone
        pass


class BackgroundCommand:
    """A command running in a session and process group of its own, its output in files (a pipe
    nobody reads would fill and stop it). It starts through this file run as a script, which lowers
    itself and then becomes the command: code run between fork and exec (`preexec_fn`) can
    deadlock in a process with threads."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], log_dir: Path):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
        with open(self.stdout_path, "w") as stdout, open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen([sys.executable, __file__, *args], cwd=cwd, env=env, stdout=stdout,
                                            stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait(self) -> subprocess.CompletedProcess:
        """Wait for it to end (at full speed once nothing else wants the cores) and return its outcome."""
        returncode = self.process.wait()
        return subprocess.CompletedProcess(self.process.args[2:], returncode, self.stdout_path.read_text(),
                                           self.stderr_path.read_text())

    def stop(self) -> None:
        """End it and whatever it started, if it still runs (a session stopped early)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


if __name__ == "__main__":
    lower_this_process()
    os.execvp(sys.argv[1], sys.argv[1:])
