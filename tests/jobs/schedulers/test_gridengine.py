"""The toy pipeline on a real single-host Grid Engine (slurm_templates/local-gridengine/): submit,
a failed task holding its dependents (exit 100), status, resume, and pairs identical to a local
run; and the parsers on output recorded from that Grid Engine (8.1.9)."""

from jobs import control
from jobs.profiles import load_profile
from jobs.runner import record_config
from jobs.schedulers.gridengine import parse_qacct, parse_qstat_xml
from jobs.status import format_status
from retmask.config import load_config
from retmask.io import read_jsonl, write_json
from tests.conftest import REPO
from tests.helpers.cluster_runs import local_tiny_run, wait_until_idle

QSTAT_XML = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>13</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>retmask-tiny-toy_model</JB_name>
      <JB_owner>root</JB_owner>
      <state>r</state>
      <JAT_start_time>2026-12-01T05:37:11</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>34</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>rm-arr100</JB_name>
      <JB_owner>root</JB_owner>
      <state>Eqw</state>
      <JB_submission_time>2026-12-01T05:38:15</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>2</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>14</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>retmask-tiny-detect</JB_name>
      <JB_owner>root</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2026-12-01T05:37:11</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>1-3:1</tasks>
    </job_list>
  </job_info>
</job_info>
"""

QACCT = """==============================================================
qname        all.q
hostname     vm
jobname      retmask-tiny-detect
jobnumber    14
taskid       1
failed       0
exit_status  0
==============================================================
qname        all.q
hostname     vm
jobname      retmask-tiny-detect
jobnumber    14
taskid       2
failed       37  : qmaster enforced h_rt, h_cpu, or h_vmem limit
exit_status  137
==============================================================
qname        all.q
hostname     vm
jobname      retmask-tiny-train
jobnumber    15
taskid       undefined
failed       0
exit_status  1
"""


def test_qstat_names_array_tasks_from_zero_and_an_error_state_is_a_failure():
    states = parse_qstat_xml(QSTAT_XML)
    assert states["13"]["state"] == "RUNNING"
    assert states["34_1"]["state"] == "FAILED" and states["34_1"]["exit_code"] == "100:0"  # task 2, in Eqw
    assert [states[f"14_{k}"]["state"] for k in range(3)] == ["PENDING"] * 3


def test_qacct_tells_a_finished_task_from_a_timed_out_or_failed_one():
    states = parse_qacct(QACCT)
    assert states == {"14_0": {"state": "COMPLETED", "exit_code": "0:0"},
                      "14_1": {"state": "TIMEOUT", "exit_code": "137:0"},
                      "15": {"state": "FAILED", "exit_code": "1:0"}}


def test_a_failed_task_holds_its_dependents_and_resume_ends_as_a_local_run(local_gridengine, toy_model_dir,
                                                                            tmp_path):
    local_run = local_tiny_run(tmp_path / "local")

    cfg = load_config(REPO / "configs" / "tiny.yaml")
    cfg.run_dir = str(tmp_path / "gridengine")
    run = record_config(cfg)
    write_json(run.root / "inject_faults.json", ["detect:1"])
    profile = load_profile("local-gridengine")
    control.submit(cfg, run, profile, until="pairs", log=lambda line: None)

    stages, source, _ = wait_until_idle(run)
    states = {stage.name: [s.state for s in stage.states] for stage in stages}
    assert source == "qstat+qacct" and states["detect"] == ["done", "failed"], format_status(stages, source)
    failed = next(s for stage in stages for s in stage.states if s.state == "failed")
    assert "fault injected into detect:1" in failed.error
    # exit 100 held the rejected synthesis behind the failed detection: nothing ran on partial scores
    assert states["synthesize_rejected"] == ["blocked", "blocked"] and states["merge_scores"] == ["blocked"]
    assert not run.done_shards("merge_scores", "") and not (run.stage_dir("merge_scores") / "done").exists()

    control.resume(cfg, run, profile, log=lambda line: None)
    stages, _, _ = wait_until_idle(run)
    assert all(s.state == "done" for stage in stages for s in stage.states), format_status(stages, "qstat")
    assert read_jsonl(run.stage_dir("pairs") / "pairs.jsonl") == read_jsonl(local_run.stage_dir("pairs") /
                                                                            "pairs.jsonl")
