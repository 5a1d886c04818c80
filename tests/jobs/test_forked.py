"""Local shards forked from a warm process: each runs with the driver's environment and working
directory as they are at submission (not the forkserver's from when it started), writes its output
to submitit's log names, returns its value or fails with its error, and is stopped by a cancel or its
time limit."""
import os
import time

import pytest

from jobs.forked import ForkedExecutor


def where_and_what(name: str) -> tuple[str, str | None, int]:
    print(f"working in {os.getcwd()}")
    return os.getcwd(), os.environ.get(name), os.getpid()


def fails() -> None:
    raise ValueError("no prompt left of 12 rows")


def sleeps() -> None:
    time.sleep(60)


def test_a_shard_runs_in_its_own_process_with_the_drivers_environment_and_folder(tmp_path, monkeypatch):
    executor = ForkedExecutor(tmp_path / "logs")
    executor.submit(where_and_what, "X").result()  # the forkserver is running from here on
    monkeypatch.setenv("RETMASK_TEST_VALUE", "set after the forkserver started")
    monkeypatch.chdir(tmp_path)
    job = executor.submit(where_and_what, "RETMASK_TEST_VALUE")
    folder, value, pid = job.result()
    assert (folder, value) == (str(tmp_path), "set after the forkserver started") and pid != os.getpid()
    assert job.paths.stdout == tmp_path / "logs" / f"{job.job_id}_0_log.out"
    assert f"working in {tmp_path}" in job.paths.stdout.read_text()


def test_a_failing_shard_raises_its_error_and_logs_its_traceback(tmp_path):
    job = ForkedExecutor(tmp_path).submit(fails)
    with pytest.raises(RuntimeError, match="ValueError: no prompt left of 12 rows"):
        job.result()
    assert "Traceback" in job.paths.stderr.read_text() and job.paths.stderr.name.endswith("_0_log.err")


def test_a_cancelled_or_timed_out_shard_is_stopped(tmp_path):
    executor = ForkedExecutor(tmp_path)
    job = executor.submit(sleeps)
    job.cancel()
    assert job.done()
    with pytest.raises(RuntimeError, match="without a result"):
        job.result()
    executor.update_parameters(timeout_min=0.02)  # 1.2 s
    late = executor.submit(sleeps)
    started = time.time()
    while not late.done():
        time.sleep(0.1)
    assert time.time() - started < 20
    with pytest.raises(TimeoutError, match="ran past its time limit"):
        late.result()
