"""The background commands' priority (tests/helpers/background.py): were it not the lowest for
both the process and its session, a rehearsal would take half the cores from the other tests."""
import os
import sys
from pathlib import Path

from tests.helpers.background import LOWEST_PRIORITY, BackgroundCommand


def test_a_background_command_runs_at_the_lowest_priority_in_a_session_of_its_own_and_stops_whole(tmp_path):
    command = BackgroundCommand([sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '60'])"],
                                tmp_path, dict(os.environ), tmp_path / "output")
    try:
        pid = command.process.pid
        assert os.getsid(pid) == pid != os.getsid(0)
        assert os.getpriority(os.PRIO_PROCESS, pid) == LOWEST_PRIORITY
        autogroup = Path(f"/proc/{pid}/autogroup")
        if autogroup.is_file():  # kernels with autogroups share the CPU between sessions first
            assert autogroup.read_text().split()[-1] == str(LOWEST_PRIORITY)
    finally:
        command.stop()
    assert command.process.returncode == -9
    assert command.wait().returncode == -9 and command.wait().stdout == ""
