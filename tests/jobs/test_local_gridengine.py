"""This host's queue of the real Grid Engine of slurm_templates/local-gridengine (Son of Grid Engine 8.1.9):
plain jobs and array tasks run and are reported by `qacct -j`, `-hold_jid` orders jobs, exit
statuses 100 and 99 do what Grid Engine documents, and jobs see the SGE_* / PE environment.

Real jobs, no mocks. Every job is submitted with `-N`: without it Grid Engine names a `-b y` job
after its command line, and a name with a space makes qsub fail with the misleading
"Unable to run job: Error reading answer list from qmaster".
"""
from __future__ import annotations

import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest


TIMEOUT_S = 60
QUEUE = "all.q"  # this host's queue: a job naming none could land in nodes.q, on a test node
QACCT_SEPARATOR = "=" * 62


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), check=False, capture_output=True, text=True, timeout=30)


class Jobs:
    """Submits jobs with qsub (to this host's queue) and deletes, at teardown, those still queued (e.g. held or in error)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def qsub(self, *args: str) -> str:
        done = run("qsub", "-terse", "-q", QUEUE, *args)
        assert done.returncode == 0, f"qsub {' '.join(args)} failed: {done.stderr}{done.stdout}"
        job_id = done.stdout.strip().split(".")[0]  # an array answers "ID.1-3:1"
        assert job_id.isdigit(), f"qsub -terse answered {done.stdout!r}"
        self.ids.append(job_id)
        return job_id

    def delete_leftovers(self) -> None:
        queued = {job["id"] for job in qstat_jobs()}
        # dependents first: deleting a job releases the jobs holding on it, which would then run
        left = [job_id for job_id in reversed(self.ids) if job_id in queued]
        if left:
            run("qdel", *left)


@pytest.fixture
def jobs(local_gridengine) -> Iterator[Jobs]:  # noqa: F811
    submitted = Jobs()
    yield submitted
    submitted.delete_leftovers()


def qacct(job_id: str) -> list[dict[str, str]]:
    """The accounting records of a job (one per array task and per run), [] while it has none.

    `qacct -j ID` prints each record as "key value" lines after a line of 62 '='."""
    done = run("qacct", "-j", job_id)
    if done.returncode != 0:  # "error: job id 12 not found" until the first record is written
        return []
    records = []
    for block in done.stdout.split(QACCT_SEPARATOR):
        record = {}
        for line in block.strip().splitlines():
            key, _, value = line.partition(" ")
            record[key] = value.strip()
        if record:
            records.append(record)
    return records


def failed_code(record: dict[str, str]) -> int:
    return int(record["failed"].split()[0])  # "30  : application error returned" -> 30


def accounted_at(record: dict[str, str], key: str) -> datetime:
    return datetime.strptime(record[key], "%a %b %d %H:%M:%S %Y")  # "Tue Dec  1 05:13:44 2026"


def wait_for_records(job_id: str, count: int, timeout: float = TIMEOUT_S) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while len(records := qacct(job_id)) < count:
        assert time.monotonic() < deadline, f"job {job_id}: {len(records)} of {count} accounting records after {timeout}s"
        time.sleep(0.3)
    return records


def qstat_jobs() -> list[dict[str, str]]:
    """Jobs of all users from `qstat -u '*' -xml`: id, state, tasks ('' for a non-array job),
    queue ('' while pending). Running array tasks come one element each, pending ones as a range."""
    done = run("qstat", "-u", "*", "-xml")
    assert done.returncode == 0, f"qstat failed: {done.stderr}"
    return [
        {
            "id": element.findtext("JB_job_number", ""),
            "state": element.findtext("state", ""),
            "tasks": element.findtext("tasks", ""),
            "queue": element.findtext("queue_name", "") or "",
            "list": element.get("state", ""),  # "running" (under queue_info) or "pending"
        }
        for element in ET.fromstring(done.stdout).iter("job_list")
    ]


def states(job_id: str) -> set[str]:
    return {job["state"] for job in qstat_jobs() if job["id"] == job_id}


def wait_for_state(job_id: str, state: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while state not in (seen := states(job_id)):
        assert time.monotonic() < deadline, f"job {job_id} not in state {state} after {timeout}s: {seen}"
        time.sleep(0.2)


def wait_for_listing(job_id: str, expected: list[dict[str, str]], timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while (listed := [job for job in qstat_jobs() if job["id"] == job_id]) != expected:
        assert time.monotonic() < deadline, f"job {job_id} listed as {listed} after {timeout}s, not {expected}"
        time.sleep(0.2)


def wait_for_file(path: Path, timeout: float = TIMEOUT_S) -> str:
    """The text of a job's output file once it ends with a newline (the file appears empty first)."""
    deadline = time.monotonic() + timeout
    while not (text := path.read_text() if path.exists() else "").endswith("\n"):
        assert time.monotonic() < deadline, f"{path} not written after {timeout}s: {text!r}"
        time.sleep(0.2)
    return text


def wait_on_flag(flag: Path) -> str:
    """A job command that waits (at most 60 s) until FLAG exists."""
    return f"i=0; while [ ! -e {flag} ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done"


def test_plain_job_and_array_tasks_are_reported_by_qacct(jobs, tmp_path):
    single = jobs.qsub("-N", "rm-plain", "-o", f"{tmp_path}/plain.out", "-j", "y", "-b", "y", "echo single")
    array = jobs.qsub(
        "-N", "rm-array", "-t", "1-3", "-o", f"{tmp_path}/array.$TASK_ID.out", "-j", "y",
        "-b", "y", "echo task $SGE_TASK_ID",
    )

    (record,) = wait_for_records(single, 1)
    assert (record["jobnumber"], record["taskid"], record["exit_status"]) == (single, "undefined", "0")
    assert failed_code(record) == 0 and record["qname"] == "all.q"

    tasks = {record["taskid"]: record for record in wait_for_records(array, 3)}
    assert set(tasks) == {"1", "2", "3"}
    for record in tasks.values():
        assert (record["jobnumber"], record["jobname"], record["exit_status"]) == (array, "rm-array", "0")
        assert failed_code(record) == 0

    assert wait_for_file(tmp_path / "plain.out") == "single\n"
    for task in (1, 2, 3):
        assert wait_for_file(tmp_path / f"array.{task}.out") == f"task {task}\n"


def test_hold_jid_waits_until_the_named_job_has_ended(jobs, tmp_path):
    flag = tmp_path / "go"
    first = jobs.qsub("-N", "rm-first", "-o", "/dev/null", "-j", "y", "-b", "y", wait_on_flag(flag))
    second = jobs.qsub(
        "-N", "rm-second", "-hold_jid", first, "-o", f"{tmp_path}/second.out", "-j", "y", "-b", "y", "echo second"
    )

    wait_for_state(first, "r")
    for _ in range(5):  # while the first runs, the second stays on hold (hqw) and never starts
        assert states(second) == {"hqw"}
        time.sleep(0.3)
    assert qacct(second) == [] and not (tmp_path / "second.out").exists()

    flag.touch()
    (first_record,) = wait_for_records(first, 1)
    (second_record,) = wait_for_records(second, 1)
    assert second_record["exit_status"] == "0"
    assert accounted_at(second_record, "start_time") >= accounted_at(first_record, "end_time")
    assert wait_for_file(tmp_path / "second.out") == "second\n"


def test_exit_100_holds_dependents_while_other_failures_release_them(jobs, tmp_path):
    # Observed on SGE 8.1.9 (what Grid Engine documents as its way to express "afterok"):
    # - a job (or array task) exiting 100 goes to error state Eqw and stays in qstat; its
    #   accounting record is written at once (exit_status 100, failed "30 : application error
    #   returned"), and jobs holding on it (-hold_jid) stay in hqw;
    # - any other non-zero exit (here 1) ends the job normally (failed 0): dependents run,
    #   i.e. -hold_jid alone is "afterany";
    # - deleting the Eqw job (qdel) releases its dependents, which then RUN: to cancel a chain
    #   after a failure, delete the dependents first (or together with it).
    exit100 = jobs.qsub("-N", "rm-exit100", "-o", "/dev/null", "-j", "y", "-b", "y", "exit 100")
    after100 = jobs.qsub(
        "-N", "rm-after100", "-hold_jid", exit100, "-o", f"{tmp_path}/after100.out", "-j", "y", "-b", "y", "echo ran"
    )
    exit1 = jobs.qsub("-N", "rm-exit1", "-o", "/dev/null", "-j", "y", "-b", "y", "exit 1")
    after1 = jobs.qsub(
        "-N", "rm-after1", "-hold_jid", exit1, "-o", f"{tmp_path}/after1.out", "-j", "y", "-b", "y", "echo ran"
    )
    array = jobs.qsub(
        "-N", "rm-arr100", "-t", "1-3", "-o", "/dev/null", "-j", "y", "-b", "y", '[ "$SGE_TASK_ID" != 2 ] || exit 100'
    )
    after_array = jobs.qsub(
        "-N", "rm-afterarr", "-hold_jid", array, "-o", f"{tmp_path}/afterarr.out", "-j", "y", "-b", "y", "echo ran"
    )

    (record,) = wait_for_records(exit100, 1)
    assert record["exit_status"] == "100" and failed_code(record) == 30
    assert "application error" in record["failed"]
    wait_for_state(exit100, "Eqw")  # still queued, in error

    (record,) = wait_for_records(exit1, 1)
    assert record["exit_status"] == "1" and failed_code(record) == 0
    (record,) = wait_for_records(after1, 1)  # exit 1 released the dependent, which ran
    assert record["exit_status"] == "0" and (tmp_path / "after1.out").read_text() == "ran\n"

    tasks = {record["taskid"]: record for record in wait_for_records(array, 3)}
    assert {task: (r["exit_status"], failed_code(r)) for task, r in tasks.items()} == {
        "1": ("0", 0), "2": ("100", 30), "3": ("0", 0),
    }
    wait_for_listing(array, [{"id": array, "state": "Eqw", "tasks": "2", "queue": "", "list": "pending"}])

    for _ in range(6):  # the failed job's and the failed task's dependents stay held
        assert states(after100) == {"hqw"} and states(after_array) == {"hqw"}
        time.sleep(0.5)
    assert qacct(after100) == [] and qacct(after_array) == []

    assert run("qdel", exit100).returncode == 0  # deleting the failed job releases its dependent
    assert wait_for_file(tmp_path / "after100.out") == "ran\n"
    assert states(after_array) == {"hqw"}


def test_exit_99_requeues_the_job_and_dependents_wait_for_its_rerun(jobs, tmp_path):
    # Observed: exit 99 means "reschedule": the run is accounted (exit_status 99, failed
    # "25 : rescheduling"), the job goes back to the queue (state Rq), and runs again once the
    # execd has reported the first run cleaned up (a load report; start.sh sets them every 2 s,
    # Grid Engine's default is 40 s). Its dependents wait for the run that ends the job.
    marker = tmp_path / "ran-once"
    script = f"if [ -e {marker} ]; then echo second; exit 0; fi; touch {marker}; echo first; exit 99"
    job = jobs.qsub("-N", "rm-exit99", "-o", f"{tmp_path}/exit99.out", "-j", "y", "-b", "y", script)
    after = jobs.qsub(
        "-N", "rm-after99", "-hold_jid", job, "-o", f"{tmp_path}/after99.out", "-j", "y", "-b", "y", "echo ran"
    )

    first, second = wait_for_records(job, 2)
    assert (first["exit_status"], failed_code(first)) == ("99", 25) and "rescheduling" in first["failed"]
    assert (second["exit_status"], failed_code(second)) == ("0", 0)
    assert wait_for_file(tmp_path / "after99.out") == "ran\n"
    (after_record,) = wait_for_records(after, 1)
    assert accounted_at(after_record, "start_time") >= accounted_at(second, "end_time")
    assert (tmp_path / "exit99.out").read_text() == "first\nsecond\n"  # -o appends across reruns


def test_job_environment_has_task_id_job_id_and_pe_slots(jobs, tmp_path):
    host = socket.gethostname()
    array = jobs.qsub(
        "-N", "rm-env-array", "-t", "1-3", "-o", f"{tmp_path}/array.$TASK_ID.out", "-j", "y", "-b", "y",
        "echo $SGE_TASK_ID $JOB_ID $SGE_TASK_FIRST $SGE_TASK_LAST $NSLOTS",
    )
    single = jobs.qsub(
        "-N", "rm-env-single", "-o", f"{tmp_path}/single.out", "-j", "y", "-b", "y", "echo $SGE_TASK_ID $JOB_ID"
    )
    pe = jobs.qsub(
        "-N", "rm-env-pe", "-pe", "smp", "2", "-o", f"{tmp_path}/pe.out", "-j", "y", "-b", "y",
        'echo $NSLOTS $NHOSTS $PE; cat "$PE_HOSTFILE"',
    )

    for task in (1, 2, 3):  # task ids are 1-based
        assert wait_for_file(tmp_path / f"array.{task}.out") == f"{task} {array} 1 3 1\n"
    assert wait_for_file(tmp_path / "single.out") == f"undefined {single}\n"

    wait_for_records(pe, 1)
    slots_hosts_pe, *hostfile = (tmp_path / "pe.out").read_text().splitlines()
    assert slots_hosts_pe == "2 1 smp"
    # PE_HOSTFILE: one line per host, "host slots queue@host processor-range"
    assert [line.split()[:3] for line in hostfile] == [[host, "2", f"all.q@{host}"]]
    (record,) = qacct(pe)
    assert (record["granted_pe"], record["slots"]) == ("smp", "2")


def test_h_rt_is_requestable_and_enforced(jobs, tmp_path):
    within = jobs.qsub("-N", "rm-hrt-ok", "-l", "h_rt=0:10:0", "-o", "/dev/null", "-j", "y", "-b", "y", "true")
    beyond = jobs.qsub("-N", "rm-hrt-kill", "-l", "h_rt=0:0:2", "-o", "/dev/null", "-j", "y", "-b", "y", "sleep 60")

    (record,) = wait_for_records(within, 1)
    assert (record["exit_status"], failed_code(record)) == ("0", 0)
    (record,) = wait_for_records(beyond, 1, timeout=30)  # killed a few seconds after its 2 s
    assert failed_code(record) == 37 and "h_rt" in record["failed"]  # "qmaster enforced h_rt, ..."
    assert record["exit_status"].split()[0] == "137"  # 128 + SIGKILL


def test_qstat_xml_lists_running_jobs_and_pending_array_ranges(jobs, tmp_path):
    flag = tmp_path / "go"
    running = jobs.qsub("-N", "rm-xml-run", "-o", "/dev/null", "-j", "y", "-b", "y", wait_on_flag(flag))
    held = jobs.qsub("-N", "rm-xml-held", "-h", "-t", "1-3", "-o", "/dev/null", "-j", "y", "-b", "y", "true")
    try:
        wait_for_state(running, "r")
        listed = {job["id"]: job for job in qstat_jobs() if job["id"] in (running, held)}
        assert listed[running] == {
            "id": running, "state": "r", "tasks": "", "queue": f"all.q@{socket.gethostname()}", "list": "running"
        }
        # a pending array is one element with the task range; -h shows as state hqw
        assert listed[held] == {"id": held, "state": "hqw", "tasks": "1-3:1", "queue": "", "list": "pending"}
    finally:
        flag.touch()
