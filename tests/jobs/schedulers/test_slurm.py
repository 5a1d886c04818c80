"""The toy pipeline on a real SLURM: submit, status while running, a failed shard named with its
error, resume, and pairs identical to those of an unfaulted local run."""

import dataclasses
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from jobs import control
from jobs.cli import main
from jobs.pipeline import build_stages, stage_fingerprints
from jobs.profiles import load_profile
from jobs.runner import load_run_config
from jobs.schedulers.slurm import job_states
from jobs.study import StudyRun
from jobs.study_cluster import _next_step, run_state
from retmask.config import save_config
from retmask.errors import UserError
from jobs.runner import record_config
from jobs.status import format_status, run_status
from retmask.config import load_config
from retmask.io import read_jsonl, write_json
from tests.conftest import REPO
from tests.helpers.cluster_runs import local_tiny_run, wait_until_idle


def test_submit_fail_status_resume_gives_the_local_pairs(local_slurm, toy_model_dir, tmp_path, capsys):
    local_run = local_tiny_run(tmp_path / "local")

    cfg = load_config(REPO / "configs" / "tiny.yaml")
    cfg.run_dir = str(tmp_path / "slurm")
    run = record_config(cfg)
    write_json(run.root / "inject_faults.json", ["synthesize_chosen:1"])
    profile = load_profile("local-slurm", ["max_array_size=1"])  # every array split into single tasks
    control.submit(cfg, run, profile, until="pairs", log=lambda line: None)
    detect_jobs = run.read_manifest()["stages"]["detect"]["job_ids"].values()
    assert len({job.split("_")[0] for job in detect_jobs}) == 2, "an array above MaxArraySize is split"

    # While its jobs are queued: a local run of the same directory, or a study rerun with another
    # config, is refused before anything is cancelled or written; so is the rerun once a shard has
    # failed while another job still waits (held here, so that it waits for sure).
    assert main(["run", str(REPO / "configs" / "tiny.yaml"), "--run-dir", str(run.root)]) == 2
    assert "job(s) queued or running on its cluster" in capsys.readouterr().err
    held = sorted(set(run.read_manifest()["stages"]["synthesize_rejected"]["job_ids"].values()))
    subprocess.run(["scontrol", "hold", *held], check=True, capture_output=True)
    deadline = time.time() + 300
    while not any(s.state == "failed" for stage in run_status(run)[0] for s in stage.states):
        assert time.time() < deadline, "the injected fault never showed"
        time.sleep(0.5)
    assert run_state(run)[0] == "failed" and set(held) <= _queue(run)
    _a_changed_study_config_is_refused_while_a_job_lives(run)
    assert set(held) <= _queue(run) and run.config_path.read_text() == record_config_text(cfg)  # nothing cancelled
    subprocess.run(["scontrol", "release", *held], check=True, capture_output=True)

    stages, source, seen = wait_until_idle(run, settle_s=3, watch=_every_running_task_counts_as_running)
    assert source == "sacct" and {"running", "pending"} & seen
    failed = [(stage.name, s) for stage in stages for s in stage.states if s.state == "failed"]
    assert [(name, s.shard) for name, s in failed] == [("synthesize_chosen", 1)]
    assert "fault injected into synthesize_chosen:1" in failed[0][1].error
    table = format_status(stages, source)
    assert "synthesize_chosen shard 1" in table and "RuntimeError: fault injected" in table
    assert "fault injected" in control.failed_logs(run)

    control.resume(cfg, run, profile, log=lambda line: None)
    stages, _, _ = wait_until_idle(run, settle_s=3)
    assert all(s.state == "done" for stage in stages for s in stage.states), format_status(stages, "sacct")
    assert read_jsonl(run.stage_dir("pairs") / "pairs.jsonl") == read_jsonl(local_run.stage_dir("pairs") /
                                                                            "pairs.jsonl")
    history = run.read_manifest()["stages"]["synthesize_chosen"]["job_history"]["1"]
    assert len(history) == 2, "the failed shard was resubmitted once, under a new job id"

    # A finished shard cut afterwards is not done: status names it, resume reruns it alone, and it
    # ends as it was written (no row lost, none twice).
    shard = run.shard_file("synthesize_chosen", 0)
    whole = shard.read_bytes()
    shard.write_bytes(whole[:-20])
    damaged = [s for stage in run_status(run)[0] for s in stage.states if s.state == "failed"]
    assert [(s.failure, "00000.jsonl holds" in s.error) for s in damaged] == [("DAMAGED", True)]
    control.resume(cfg, run, profile, log=lambda line: None)
    assert len(run.read_manifest()["stages"]["synthesize_chosen"]["job_history"]["0"]) == 2
    wait_until_idle(run, settle_s=3)
    assert shard.read_bytes() == whole and 0 in run.done_shards("synthesize_chosen",
                                                                 run.read_manifest()["stages"]["synthesize_chosen"]
                                                                 ["fingerprint"])

    # A submit with another sampling temperature is refused, and leaves the config that queued
    # jobs of this run would read as it was.
    config_before = run.config_path.read_text()
    assert main(["submit", str(REPO / "configs" / "tiny.yaml"), "--cluster", "local-slurm", "--run-dir", str(run.root),
                 "--until", "pairs", "--set", "synthesis.sampling.temperature=0.9"]) == 2
    assert "written under another config" in capsys.readouterr().err
    assert run.config_path.read_text() == config_before


def record_config_text(cfg) -> str:
    with tempfile.TemporaryDirectory() as folder:
        save_config(cfg, Path(folder) / "config.yaml")
        return (Path(folder) / "config.yaml").read_text()


def _queue(run) -> set[str]:
    """The run's job ids SLURM still has queued or running (squeue's own view)."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout.split()
    ids = {job for entry in run.read_manifest()["stages"].values() for job in entry.get("job_ids", {}).values()}
    return {job for job in out if job in ids}


def _a_changed_study_config_is_refused_while_a_job_lives(run) -> None:
    changed = load_run_config(run)
    changed.synthesis.sampling.temperature = 0.8
    prints = stage_fingerprints(changed, build_stages(changed))
    study_run = StudyRun("retrieval-mask", 1, dataclasses.replace(changed, run_dir=str(run.root)), prints)
    with pytest.raises(UserError, match=r"the study config changed \(.*synthesize_chosen.*\) while \d+ of its jobs "
                                        r"of the earlier config are queued or running .*nothing was submitted or "
                                        r"cancelled"):
        _next_step(study_run, {})


def _every_running_task_counts_as_running(run) -> None:
    """For the first seconds of a task sacct still says PENDING while squeue says RUNNING: the
    state retmask acts on is squeue's then (else resume would resubmit a running shard)."""
    ids = [job for entry in run.read_manifest()["stages"].values() for job in entry.get("job_ids", {}).values()]
    queue = {line.split("|")[0]: line.split("|")[1] for line in subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True).stdout.split()}
    merged, _ = job_states(ids)
    for job in ids:
        if queue.get(job) == "RUNNING":
            assert merged[job]["state"] != "PENDING", (job, merged[job])


def test_gpu_request_on_a_cluster_without_gpus_is_refused_before_submission(local_slurm):
    import pytest

    from jobs.schedulers.slurm import check_partition
    from retmask.config import ConfigError

    with pytest.raises(ConfigError, match="asks for 4 GPUs per node but partition 'debug' has no GPUs"):
        check_partition(load_profile("local-slurm", ["gpus_per_node=4"]))
    with pytest.raises(ConfigError, match="partition 'nope' not found"):
        check_partition(load_profile("local-slurm", ["partition=nope"]))


def test_detect_alone_on_slurm_gives_the_local_scores(local_slurm, toy_model_dir, tmp_path, capsys):
    from retmask.io import read_json
    from retmask.rundir import RunDir
    from tests.jobs.test_cli import detect_arguments

    local, cluster = RunDir(tmp_path / "local"), RunDir(tmp_path / "slurm")
    assert main(detect_arguments(toy_model_dir, local.root)) == 0
    assert main(detect_arguments(toy_model_dir, cluster.root) + ["--cluster", "local-slurm"]) == 0
    assert f"retmask status {cluster.root}" in capsys.readouterr().out
    stages, _, _ = wait_until_idle(cluster, settle_s=3)
    assert [stage.name for stage in stages] == ["detect", "merge_scores"]
    assert all(s.state == "done" for stage in stages for s in stage.states), format_status(stages, "sacct")
    scores = [read_json(run.stage_dir("merge_scores") / "retrieval_scores.json") for run in (local, cluster)]
    assert scores[0] == scores[1]


def test_a_submission_cut_by_a_submit_limit_leaves_what_it_queued_recorded(local_slurm, toy_model_dir, tmp_path,
                                                                           capsys):
    """The local cluster's QoS allows 3 queued jobs per user: the 4th sbatch is refused."""
    import threading

    import pytest

    from jobs.cluster import SubmissionCut

    cfg = load_config(REPO / "configs" / "tiny.yaml", ["detection.shards=4"])
    cfg.run_dir = str(tmp_path / "cut")
    run = record_config(cfg)
    limited = load_profile("local-slurm", ["max_array_size=1", "qos=retmask-submit-limit"])
    with pytest.raises(SubmissionCut, match=r"refused the detect job .*QOS.*; 3 job\(s\) queued before it are "
                                            r"recorded in .*manifest.json"):
        control.submit(cfg, run, limited, until="merge_scores", log=lambda line: None)
    recorded = run.read_manifest()["stages"]
    assert len(recorded["toy_model"]["job_ids"]) == 1 and sorted(recorded["detect"]["job_ids"]) == ["0", "1"]
    stages, _ = run_status(run)
    assert sum(s.job_id is not None for stage in stages for s in stage.states) == 3  # status sees every queued job

    # A second submit would queue them twice: refused, pointing to status / resume / cancel.
    assert main(["submit", str(REPO / "configs" / "tiny.yaml"), "--cluster", "local-slurm", "--run-dir", str(run.root),
                 "--until", "merge_scores", "--set", "detection.shards=4"]) == 2
    assert "already has 3 job(s) queued or running" in capsys.readouterr().err

    # One submitter or resumer at a time: a resume while another holds the run is refused.
    held, release = threading.Event(), threading.Event()

    def hold():
        with control.one_submitter(run):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        assert main(["resume", str(run.root), "--cluster", "local-slurm"]) == 2
        assert "is submitting or resuming" in capsys.readouterr().err
    finally:
        release.set()
        holder.join()

    # Without the limit, resume submits the rest behind what is queued; the run completes.
    control.resume(cfg, run, load_profile("local-slurm"), log=lambda line: None)
    stages, _, _ = wait_until_idle(run, settle_s=3)
    assert all(s.state == "done" for stage in stages for s in stage.states), format_status(stages, "sacct")
    assert (run.stage_dir("merge_scores") / "retrieval_scores.json").is_file()


def test_a_run_a_local_driver_still_runs_is_not_submitted(local_slurm, tmp_path, capsys):
    """One driver per run: `retmask submit` beside a live `retmask run` of the same directory is
    refused, naming the process, before anything is written."""
    import socket

    from retmask.io import write_json

    driver = subprocess.Popen(["sleep", "60"])  # the local run's process, as its manifest records it
    try:
        run = tmp_path / "run"
        write_json(run / "manifest.json", {"executor": "local", "order": [], "stages": {},
                                           "driver": {"host": socket.gethostname(), "pid": driver.pid}})
        before = sorted(path.name for path in run.iterdir())
        assert main(["submit", str(REPO / "configs/tiny.yaml"), "--cluster", "local-slurm", "--run-dir", str(run)]) == 2
        assert f"is being run on this machine by pid {driver.pid}" in capsys.readouterr().err
        assert sorted(path.name for path in run.iterdir() if path.name != ".submit.lock") == before
    finally:
        driver.kill()
