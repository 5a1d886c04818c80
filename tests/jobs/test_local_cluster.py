"""The real single-node SLURM cluster of slurm_templates/local-cluster: plain sbatch jobs and arrays
run and reach COMPLETED in accounting, GPU requests fail at submit, and submitit gets a result back."""
import os
import subprocess
import time

import pytest
import submitit

TIMEOUT_S = 120
FINAL_FAILURES = {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL"}


def sbatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sbatch", "--parsable", *args], check=False, capture_output=True, text=True, timeout=30)


def submit(*args: str) -> str:
    done = sbatch(*args)
    assert done.returncode == 0, f"sbatch {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip().split(";")[0]


def accounting_states(job_ids: list[str]) -> dict[str, str]:
    """JobID -> State as sacct reports it (one row per job / array task, no steps)."""
    done = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
        check=False, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, f"sacct failed: {done.stderr}"
    rows = (line.split("|") for line in done.stdout.splitlines() if line.strip())
    return {job_id: state.split()[0] for job_id, state in rows}  # "CANCELLED by 0" -> CANCELLED


def test_sbatch_job_and_array_complete_in_accounting(local_slurm, tmp_path):
    single = submit(f"--output={tmp_path}/%j.out", "--wrap", "echo single")
    array = submit("--array=0-2", f"--output={tmp_path}/%A_%a.out", "--wrap", "echo task $SLURM_ARRAY_TASK_ID")
    expected = {single, f"{array}_0", f"{array}_1", f"{array}_2"}

    deadline = time.monotonic() + TIMEOUT_S  # sacct lags squeue by a few seconds: poll it
    while True:
        states = accounting_states([single, array])
        failed = {job: state for job, state in states.items() if state in FINAL_FAILURES}
        assert not failed, f"jobs ended badly: {failed}"
        if set(states) == expected and set(states.values()) == {"COMPLETED"}:
            break
        assert time.monotonic() < deadline, f"not all COMPLETED after {TIMEOUT_S}s: {states}"
        time.sleep(0.5)

    assert (tmp_path / f"{single}.out").read_text() == "single\n"
    for task in range(3):
        assert (tmp_path / f"{array}_{task}.out").read_text() == f"task {task}\n"


def test_gpu_request_is_rejected_at_submit(local_slurm, tmp_path):
    done = sbatch("--gres=gpu:1", f"--output={tmp_path}/%j.out", "--wrap", "true")
    assert done.returncode != 0, f"a GPU job was accepted on a cluster without GPUs: {done.stdout}"
    assert "generic resource" in done.stderr.lower(), done.stderr


def test_submitit_runs_a_function_and_returns_its_value(local_slurm, tmp_path):
    def multiply(a: int, b: int) -> tuple[int, str | None]:
        return a * b, os.environ.get("SLURM_JOB_ID")

    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(slurm_partition="debug", timeout_min=5, cpus_per_task=1)
    job = executor.submit(multiply, 6, 7)

    deadline = time.monotonic() + TIMEOUT_S
    while not job.done():
        if time.monotonic() > deadline:
            job.cancel(check=False)
            pytest.fail(f"submitit job {job.job_id} not done after {TIMEOUT_S}s (state {job.state})")
        time.sleep(0.5)
    assert job.result() == (42, job.job_id)
