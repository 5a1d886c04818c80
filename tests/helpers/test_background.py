"""The background commands' priority (tests/helpers/background.py): were it not the lowest for
both the process and its session, a rehearsal would take half the cores from the other tests."""
import os
import sys
import time
from pathlib import Path

from tests.helpers.background import LOWEST_PRIORITY, BackgroundCommand


def _started(command: BackgroundCommand, timeout_s: float = 30) -> None:
    """Until the launcher has become the command (it lowers itself first)."""
    deadline = time.time() + timeout_s
    while "started" not in command.stdout_path.read_text():
        assert time.time() < deadline and command.process.poll() is None, command.stderr_path.read_text()
        time.sleep(0.05)


def test_a_background_command_runs_at_the_lowest_priority_in_a_session_of_its_own_and_stops_whole(tmp_path):
    command = BackgroundCommand([sys.executable, "-c", "import subprocess; print('started', flush=True); "
                                 "subprocess.run(['sleep', '60'])"], tmp_path, dict(os.environ), tmp_path / "output")
    try:
        _started(command)
        pid = command.process.pid
        assert os.getsid(pid) == pid != os.getsid(0)
        assert os.getpriority(os.PRIO_PROCESS, pid) == LOWEST_PRIORITY
        autogroup = Path(f"/proc/{pid}/autogroup")
        if autogroup.is_file():  # kernels with autogroups share the CPU between sessions first
            assert autogroup.read_text().split()[-1] == str(LOWEST_PRIORITY)
    finally:
        command.stop()
    result = command.wait()
    assert result.returncode == -9 and result.stdout == "started\n"
    assert result.args == [sys.executable, "-c", command.process.args[-1]]


def test_a_background_command_gives_its_exit_status_and_output(tmp_path):
    result = BackgroundCommand(["sh", "-c", "echo out; echo err >&2; exit 3"], tmp_path, dict(os.environ),
                               tmp_path / "output").wait()
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
