"""PBS Professional cannot be installed here: its job scripts are golden files
(tests/jobs/golden/abci3-h200-1x8.sbatch) and its parsers read output written in the formats
PBS documents (qsub.1B, qstat.1B, openpbs src/lib/Libcmds/pbs_json.c and src/include/job.h for
the JOB_EXEC_* exit statuses), for the cases a run meets: an array with a failed subjob, a
running job, a job held by its dependency, a job killed at its walltime, and a dependent the
server deleted because its afterok dependency failed."""
import pytest

from jobs.profiles import load_profile
from jobs.schedulers import scheduler_for
from jobs.schedulers.pbs_executor import PBSExecutor, PBSJobEnvironment, make_pbs_script, pbs_id
from jobs.schedulers.pbs import parse_qstat_json
from retmask.config import ConfigError

ARRAY = """{
    "timestamp":1736740000,
    "pbs_version":"2022.1.6",
    "pbs_server":"pbs1",
    "Jobs":{
        "1235[].pbs1":{
            "Job_Name":"retmask-tiny-detect",
            "job_state":"F",
            "queue":"rt_HG",
            "substate":93,
            "comment":"Job Array Began at Mon Jan 13 at 10:01 and failed",
            "Exit_status":1,
            "array":"True",
            "array_state_count":"Queued:0 Running:0 Exiting:0 Expired:3",
            "array_indices_submitted":"0-2",
            "array_indices_remaining":"-"
        },
        "1235[0].pbs1":{
            "Job_Name":"retmask-tiny-detect",
            "job_state":"X",
            "queue":"rt_HG",
            "substate":92,
            "comment":"Job run at Mon Jan 13 at 10:01 on (hnode010[0]:ncpus=16:ngpus=1) and finished",
            "Exit_status":0,
            "array_id":"1235[].pbs1",
            "array_index":0
        },
        "1235[2].pbs1":{
            "Job_Name":"retmask-tiny-detect",
            "job_state":"X",
            "queue":"rt_HG",
            "substate":93,
            "comment":"Job run at Mon Jan 13 at 10:01 on (hnode011[1]:ncpus=16:ngpus=1) and failed",
            "Exit_status":3,
            "array_id":"1235[].pbs1",
            "array_index":2
        }
    }
}"""

SINGLE = """{
    "timestamp":1736740100,
    "pbs_version":"2022.1.6",
    "pbs_server":"pbs1",
    "Jobs":{
        "1240.pbs1":{
            "Job_Name":"retmask-tiny-train",
            "job_state":"R",
            "queue":"rt_HF",
            "substate":42,
            "project":"gxx50000"
        },
        "1241.pbs1":{
            "Job_Name":"retmask-tiny-evaluate",
            "job_state":"H",
            "queue":"rt_HG",
            "depend":"afterok:1240.pbs1@pbs1",
            "Hold_Types":"s",
            "substate":22
        },
        "1239.pbs1":{
            "Job_Name":"retmask-tiny-synthesize_chosen",
            "job_state":"F",
            "queue":"rt_HG",
            "substate":93,
            "comment":"Job run at Mon Jan 13 at 09:00 on (hnode012[0]:ncpus=16:ngpus=1) and exceeded resource walltime",
            "Exit_status":-29,
            "run_count":1
        },
        "1242.pbs1":{
            "Job_Name":"retmask-tiny-report",
            "job_state":"F",
            "queue":"rt_HC",
            "substate":92
        }
    }
}"""


def test_subjobs_are_read_by_index_and_the_array_itself_is_left_out():
    states = parse_qstat_json(ARRAY)
    assert states == {"1235_0": {"state": "COMPLETED", "exit_code": "0:0"},
                      "1235_2": {"state": "FAILED", "exit_code": "3:0"}}


def test_running_held_timed_out_and_deleted_for_a_failed_dependency():
    states = parse_qstat_json(SINGLE)
    assert states["1240"]["state"] == "RUNNING"
    assert states["1241"]["state"] == "PENDING"
    assert states["1239"] == {"state": "TIMEOUT", "exit_code": "-29:0"}
    # F without Exit_status: deleted unrun, as PBS does to an afterok dependent of a failed job
    assert states["1242"] == {"state": "CANCELLED", "exit_code": "", "reason": "DependencyNeverSatisfied"}


def test_qsub_output_and_ids():
    parse = PBSExecutor._get_job_id_from_submission_command
    assert parse("1234.pbs1\n") == "1234" and parse("1235[].pbs1\n") == "1235"
    assert pbs_id("1235_3") == "1235[3]" and pbs_id("1234") == "1234"


def test_dependencies_name_whole_arrays_and_wait_any_for_an_earlier_arrays_task():
    scheduler = scheduler_for(load_profile("abci3-h200", ["account=gxa50000"]))
    assert scheduler.base_id("1235_0") == "1235[]" and scheduler.base_id("1240") == "1240"
    assert scheduler.after(["1235[]", "1240"]) == {"depend": "afterok:1235[]:1240"}
    # resume: a task still running in an array that also holds the failed task being resubmitted
    assert scheduler.after(["1236[]", "1235_4"]) == {"depend": "afterok:1236[],afterany:1235[]"}


def test_the_job_environment_reads_pbs_ids(monkeypatch):
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "pbs")
    monkeypatch.setenv("PBS_JOBID", "1235[3].pbs1")
    monkeypatch.setenv("PBS_ARRAY_INDEX", "3")
    assert PBSJobEnvironment().job_id == "1235_3"
    monkeypatch.setenv("PBS_JOBID", "1234.pbs1")
    monkeypatch.delenv("PBS_ARRAY_INDEX")
    assert PBSJobEnvironment().job_id == "1234"


def test_a_pbs_profile_needs_the_group():
    profile = load_profile("abci3-h200")
    with pytest.raises(ConfigError, match="PBS sites such as ABCI need your group"):
        scheduler_for(profile).check(profile)


def test_a_multi_node_job_starts_a_task_per_host_of_the_node_file():
    script = make_pbs_script("python -u -m submitit.core._submit /runs/x/logs", "/runs/x/logs", select=2,
                             queue="rt_HF", setup=["module load cuda"])
    assert "#PBS -l select=2" in script
    assert 'RETMASK_NODE_HOSTS=$(cat "$PBS_NODEFILE" | awk' in script  # a line per MPI process: one per host
    assert 'else pbs_tmrsh "$host" /bin/bash "$node_task" "$rank" &' in script
    node_task = script.split("cat << 'NODE_TASK'")[1].split("NODE_TASK")[0]
    assert "module load cuda" in node_task and "export SUBMITIT_EXECUTOR=pbs" in node_task  # setup reruns there
    assert script.rstrip().endswith('exit "$status"')


def test_a_node_task_reads_its_rank_and_the_jobs_hosts(monkeypatch):
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "pbs")
    monkeypatch.setenv("PBS_JOBID", "1234.pbs1")
    monkeypatch.setenv("RETMASK_NODE_RANK", "1")
    monkeypatch.setenv("RETMASK_NODE_HOSTS", "hnode001,hnode002")
    env = PBSJobEnvironment()
    assert (env.global_rank, env.node, env.num_tasks, env.num_nodes) == (1, 1, 2, 2)
    assert env.hostnames == ["hnode001", "hnode002"] and env.job_id == "1234"
