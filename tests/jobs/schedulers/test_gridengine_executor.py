"""The Grid Engine submitit executor on the real single-host Grid Engine: a multi-node job runs one
task per node, the others started with `qrsh -inherit`, each knowing its rank and the job's hosts;
the first failing task fails the job, held as Grid Engine holds a failure's dependents."""
import time

import pytest

from jobs.schedulers.gridengine_executor import GridEngineExecutor, make_qsub_script
from tests.conftest import REPO

TIMEOUT_S = 120


def two_node_executor(tmp_path) -> GridEngineExecutor:
    """A job of two "nodes" on one machine: the second is this host by another name (localhost,
    an alias of it in Grid Engine's host_aliases), added to the job's host file by the setup, so
    that its task is started by `qrsh -inherit` as on a real second node."""
    hosts = tmp_path / "hosts"
    executor = GridEngineExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(job_name="rm-two-nodes", queue="all.q", nodes=2, cpus=2, time=5, setup=[
        f"export PYTHONPATH={REPO}",  # the functions below are this module's
        '[ -n "${RETMASK_NODE_RANK:-}" ] || { cat "$PE_HOSTFILE"; echo "localhost 1 all.q@localhost UNDEFINED"; }'
        f' > {hosts}',
        f'[ -n "${{RETMASK_NODE_RANK:-}}" ] || export PE_HOSTFILE={hosts}',
    ])
    return executor


def wait_for_results(job, tasks: int) -> list:
    deadline = time.time() + TIMEOUT_S
    paths = [job.task(rank).paths.result_pickle for rank in range(tasks)]
    while not all(path.exists() for path in paths):
        assert time.time() < deadline, f"no results in {TIMEOUT_S}s; logs: {job.paths.stderr.parent}"
        time.sleep(1)
    return job.results()


def describe_task():
    import os
    import socket

    import submitit

    env = submitit.JobEnvironment()
    return {"rank": env.global_rank, "node": env.node, "tasks": env.num_tasks, "hosts": env.hostnames,
            "job": env.job_id, "host": socket.gethostname(), "setup_ran": os.environ.get("RETMASK_CPUS_SEEN")}


def test_a_two_node_job_runs_one_task_per_node_through_qrsh_inherit(local_gridengine, tmp_path):
    executor = two_node_executor(tmp_path)
    executor.parameters["setup"].append("export RETMASK_CPUS_SEEN=yes")  # reruns on every node
    job = executor.submit(describe_task)
    assert len(job._sub_jobs) == 2
    first, second = wait_for_results(job, 2)
    assert (first["rank"], first["node"], second["rank"], second["node"]) == (0, 0, 1, 1)
    assert first["hosts"] == second["hosts"] and first["hosts"][1] == "localhost" and len(first["hosts"]) == 2
    assert first["tasks"] == second["tasks"] == 2
    assert first["job"] == second["job"] == job.job_id
    assert first["setup_ran"] == second["setup_ran"] == "yes"
    logs = job.paths.folder
    assert (logs / f"{job.job_id}_1_log.out").exists()  # each rank logs where submitit looks for it


def fail_on_rank_one():
    import submitit

    if submitit.JobEnvironment().global_rank == 1:
        raise RuntimeError("rank 1 fails")
    time.sleep(600)  # would wait for rank 1 at a rendezvous: the job ends it


def test_one_failing_node_ends_the_others_and_holds_the_dependents(local_gridengine, tmp_path):
    import subprocess

    job = two_node_executor(tmp_path).submit(fail_on_rank_one)
    deadline = time.time() + TIMEOUT_S
    while True:
        listing = subprocess.run(["qstat", "-j", job.job_id], capture_output=True, text=True).stdout
        if "error reason" in listing or "Job is in error state" in listing:
            break
        assert time.time() < deadline, f"job {job.job_id} not in error state in {TIMEOUT_S}s:\n{listing}"
        time.sleep(1)
    subprocess.run(["qdel", job.job_id], capture_output=True)
    assert "rank 1 fails" in job.task(1).stderr()


def test_a_folder_named_in_remote_commands_must_need_no_quoting():
    with pytest.raises(ValueError, match="no spaces or quotes"):
        make_qsub_script("python -m submitit.core._submit x", "/runs/my run/logs", nodes=2)
