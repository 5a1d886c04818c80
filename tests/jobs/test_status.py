"""Status from recorded `sacct` output: a job a site cancels for a failed dependency
(SchedulerParameters=kill_invalid_depend) is blocked, not failed; a light stage is as far as the
job that hosts it."""
from jobs.schedulers.slurm import SlurmScheduler, parse_sacct
from jobs.status import run_status
from retmask.rundir import RunDir

# sacct -n -P -X -j 100,101 --format=JobID,State,ExitCode,Reason, as Slurm 22.05 prints it
RECORDED = """100_0|COMPLETED|0:0|None
100_1|FAILED|1:0|NonZeroExitCode
101|CANCELLED by 0|0:0|DependencyNeverSatisfied
"""


def test_a_job_cancelled_for_a_failed_dependency_is_blocked_and_so_is_what_it_hosts(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.write_manifest({"executor": "slurm", "order": ["synthesize_chosen", "pairs", "train"], "stages": {
        "synthesize_chosen": {"fingerprint": "c", "shards": 2, "job_ids": {"0": "100_0", "1": "100_1"}},
        "pairs": {"fingerprint": "p", "shards": 1, "runs_in": ["train"]},
        "train": {"fingerprint": "t", "shards": 1, "job_ids": {"0": "101"}, "before": ["pairs"]}}})
    run.mark_done("synthesize_chosen", 0, "c", 1.0)
    monkeypatch.setattr(SlurmScheduler, "states", lambda self, job_ids: (parse_sacct(RECORDED), "sacct"))
    stages, _ = run_status(run)
    states = {stage.name: [(s.state, s.failure) for s in stage.states] for stage in stages}
    assert states == {"synthesize_chosen": [("done", None), ("failed", "exit code 1")],
                      "pairs": [("blocked", None)], "train": [("blocked", "DependencyNeverSatisfied")]}


# both tasks' shards are done; task 1 still runs: it computes the pairs, which run after them
AFTER_ITS_SHARD = """100_0|COMPLETED|0:0|None
100_1|RUNNING|0:0|None
"""


def test_a_stage_run_after_its_hosts_shards_runs_while_their_job_does(tmp_path, monkeypatch):
    """Not missing: a resume or a wait reading that would take a stage being computed for one never run."""
    run = RunDir(tmp_path)
    run.write_manifest({"executor": "slurm", "order": ["synthesize_rejected", "pairs"], "stages": {
        "synthesize_rejected": {"fingerprint": "r", "shards": 2, "job_ids": {"0": "100_0", "1": "100_1"},
                                "after": ["pairs"]},
        "pairs": {"fingerprint": "p", "shards": 1, "runs_in": ["synthesize_rejected"]}}})
    run.mark_done("synthesize_rejected", 0, "r", 1.0)
    run.mark_done("synthesize_rejected", 1, "r", 1.0)
    recorded = AFTER_ITS_SHARD
    monkeypatch.setattr(SlurmScheduler, "states", lambda self, job_ids: (parse_sacct(recorded), "sacct"))
    assert [s.state for s in run_status(run)[0][1].states] == ["running"]
    recorded = AFTER_ITS_SHARD.replace("RUNNING", "COMPLETED")  # ended without marking it: missing
    assert [s.state for s in run_status(run)[0][1].states] == ["missing"]


# the job behind the failure says so; the job behind that one only says it waits
BEHIND = """100_0|FAILED|1:0|NonZeroExitCode
101|PENDING||DependencyNeverSatisfied
102|PENDING||Dependency
103|RUNNING|0:0|None
"""


def test_a_job_waiting_on_a_blocked_job_is_blocked_too_and_other_branches_are_not(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.write_manifest({"executor": "slurm", "order": ["synthesize_rejected", "train", "evaluate", "evaluate_base"],
                        "stages": {
                            "synthesize_rejected": {"fingerprint": "r", "shards": 1, "job_ids": {"0": "100_0"}},
                            "train": {"fingerprint": "t", "shards": 1, "job_ids": {"0": "101"},
                                      "depends": ["synthesize_rejected"]},
                            "evaluate": {"fingerprint": "e", "shards": 1, "job_ids": {"0": "102"},
                                         "depends": ["train", "evaluate_base"]},
                            "evaluate_base": {"fingerprint": "b", "shards": 1, "job_ids": {"0": "103"}}}})
    monkeypatch.setattr(SlurmScheduler, "states", lambda self, job_ids: (parse_sacct(BEHIND), "sacct"))
    states = {stage.name: [s.state for s in stage.states] for stage in run_status(run)[0]}
    assert states == {"synthesize_rejected": ["failed"], "train": ["blocked"], "evaluate": ["blocked"],
                      "evaluate_base": ["running"]}


def test_sacct_array_ranges_and_empty_reasons_are_read():
    states = parse_sacct("7_[2-3%2]|PENDING||None\n8|RUNNING|0:0|None\n")
    assert states == {"7_2": {"state": "PENDING", "exit_code": ""}, "7_3": {"state": "PENDING", "exit_code": ""},
                      "8": {"state": "RUNNING", "exit_code": "0:0"}}


def test_watch_refreshes_with_rate_and_eta_until_the_run_is_done(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from jobs.status import watch
    from tests.conftest import REPO

    run = RunDir(tmp_path / "run")
    process = subprocess.Popen([sys.executable, "-m", "jobs.cli", "run", str(REPO / "configs" / "tiny.yaml"),
                                "--run-dir", str(run.root), "--until", "detect", "--max-parallel", "1",
                                # long enough that a shard's progress is seen moving between two tables
                                "--set", "detection.lengths=[32,128,6]", "--progress-every", "0.2"],
                               cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        while not run.manifest_path.is_file():
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.2)
        tables = []
        stages = watch(run, 0.5, write=tables.append)  # a local run: its shards' progress says they run
    finally:
        assert process.wait(600) == 0, process.stderr.read()
    detect = [line for table in tables for line in table.splitlines() if line.startswith("detect ")]
    assert any("instances/s" in line for line in detect), "\n".join(tables)  # rate and ETA while it ran
    assert len(tables) >= 3 and all(s.state == "done" for s in next(s for s in stages if s.name == "detect").states)


def test_a_task_squeue_says_runs_runs_whatever_sacct_says_yet():
    """The first seconds of a task: sacct (accounting, behind) says PENDING, squeue says RUNNING. The
    task runs: were it taken for pending, resume would cancel it and queue its shard again."""
    from jobs.schedulers.slurm import merge_queue_view

    accounting = parse_sacct("243_0|PENDING|0:0|None\n243_1|PENDING|0:0|None\n243_2|COMPLETED|0:0|None\n")
    queue = {"243_0": {"state": "RUNNING", "exit_code": "", "reason": "None"},
             "243_1": {"state": "PENDING", "exit_code": "", "reason": "Resources"},
             "244": {"state": "PENDING", "exit_code": "", "reason": "Dependency"}}  # not in accounting yet
    merged = merge_queue_view(accounting, ["243_0", "243_1", "243_2", "244"], lambda: queue)
    assert {job: entry["state"] for job, entry in merged.items()} == \
        {"243_0": "RUNNING", "243_1": "PENDING", "243_2": "COMPLETED", "244": "PENDING"}
    assert merged["243_1"]["reason"] == "Resources"
    asked = []
    settled = parse_sacct("243_0|RUNNING|0:0|None\n")
    assert merge_queue_view(settled, ["243_0"], lambda: asked.append(1) or {}) == settled and not asked
