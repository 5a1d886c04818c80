"""PBS Professional behind the scheduler interface (ABCI 3.0): job scripts through
pbs_executor.py, `-W depend` on whole arrays, states from one `qstat -x -f -F json -t` per
refresh. PBS cannot be installed here: its scripts are checked against golden files and its
parsers against output in PBS's documented formats (tests/jobs/schedulers/test_pbs.py)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

from jobs.schedulers.base import BLOCKED_REASON, JobRequest, Scheduler, resource_type_for
from jobs.schedulers.pbs_executor import make_pbs_script, pbs_id
from retmask.config import ConfigError

# PBS exit statuses below 0 are the server's (openpbs src/include/job.h, JOB_EXEC_*)
KILLED_FOR = {-29: "TIMEOUT", -27: "OUT_OF_MEMORY", -20: "NODE_FAIL"}


class PBSScheduler(Scheduler):
    kind = "pbs"

    def __init__(self, profile):
        self.profile = profile

    def check(self, profile) -> None:
        if not profile.account:
            raise ConfigError("profile account: missing; PBS sites such as ABCI need your group (qsub -P GROUP): "
                              "set account in your profile or with --profile-set account=GROUP")
        if shutil.which("qstat") is None or shutil.which("qmgr") is None:
            raise ConfigError("no PBS here (qstat/qmgr not found); submit from a login node, or use --dry-run")

    def parameters(self, request: JobRequest) -> dict:
        """ABCI names a resource type as the queue (rt_HF: a whole node, rt_HG: one GPU, rt_HC: CPUs)
        chosen by the GPUs a job needs; `select` counts the nodes (or GPU slices) of that type."""
        resource_type = resource_type_for(self.profile.resource_types, request.gpus)
        params = {
            "job_name": request.name,
            "queue": resource_type or request.queue,
            "select": request.nodes,
            "time": request.minutes,
            "array_parallelism": request.array_parallelism,
            "setup": [f"export RETMASK_CPUS={request.cpus}", *request.setup],
        }
        if not resource_type:
            params["resources"] = {"ncpus": request.cpus, "mem": f"{request.mem_gb}gb",
                                   **({"ngpus": request.gpus} if request.gpus else {})}
        if request.account:
            params["project"] = request.account
        return params

    def after(self, job_ids: list[str]) -> dict:
        """New arrays and jobs: afterok. A task of an earlier array (resume): PBS can wait only for
        the whole array, which may hold the failed task being resubmitted, so afterany; the job
        then checks its inputs are complete before it runs (jobs/runner.check_upstream)."""
        task = re.compile(r"\d+_\d+")
        whole = sorted({job_id for job_id in job_ids if not task.fullmatch(job_id)})
        earlier = sorted({f"{job_id.split('_')[0]}[]" for job_id in job_ids if task.fullmatch(job_id)})
        parts = ([f"afterok:{':'.join(whole)}"] if whole else []) + ([f"afterany:{':'.join(earlier)}"] if earlier else [])
        return {"depend": ",".join(parts)}

    def executor(self, folder: str):
        from jobs.schedulers.pbs_executor import PBSExecutor

        return PBSExecutor(folder=folder)

    def render(self, parameters: dict, folder: str, command: str, array_size: int | None) -> str:
        return make_pbs_script(command=command, folder=folder, map_count=array_size, **parameters)

    def base_id(self, job_id: str) -> str:
        """An array is waited for as a whole: `123[]`."""
        return f"{job_id.split('_')[0]}[]" if "_" in job_id else job_id

    def states(self, job_ids: list[str]) -> tuple[dict[str, dict], str]:
        if not job_ids or shutil.which("qstat") is None:
            return {}, "none"
        arrays = sorted({pbs_id(job_id.split("_")[0]) + ("[]" if "_" in job_id else "") for job_id in job_ids})
        out = subprocess.run(["qstat", "-x", "-f", "-F", "json", "-t", *arrays], capture_output=True, text=True)
        return parse_qstat_json(out.stdout), "qstat"

    def cancel(self, job_ids: list[str]) -> None:
        if job_ids:
            subprocess.run(["qdel", *[pbs_id(job_id) for job_id in job_ids]], check=False, capture_output=True)

    def max_array_size(self) -> int:
        out = subprocess.run(["qmgr", "-c", "list server max_array_size"], capture_output=True, text=True)
        match = re.search(r"max_array_size\s*=\s*(\d+)", out.stdout)
        return int(match.group(1)) if match else 10000  # PBS's default


def _job_id(pbs_job_id: str) -> str | None:
    """`1235[3].server` -> `1235_3`, `1234.server` -> `1234`; an array as a whole -> None."""
    match = re.match(r"(\d+)(?:\[(\d*)\])?", pbs_job_id)
    if not match or match.group(2) == "":
        return None
    return match.group(1) + (f"_{match.group(2)}" if match.group(2) else "")


def parse_qstat_json(text: str) -> dict[str, dict]:
    """`qstat -x -f -F json -t` -> {submitit job id: state, exit code, reason} in the shared
    vocabulary: Q/W/T/H pending, R/E/B running, F/X finished (by Exit_status: 0 completed, the
    server's kills by class, else failed; none: deleted unrun because a dependency failed, blocked)."""
    if not text.strip():
        return {}
    states = {}
    for pbs_job_id, job in json.loads(text).get("Jobs", {}).items():
        job_id = _job_id(pbs_job_id)
        if job_id is None:
            continue
        letter = job.get("job_state", "")
        comment = job.get("comment", "")
        if letter in ("F", "X") and "Exit_status" not in job:
            # never ran: deleted by the server because an afterok dependency failed (or by qdel)
            states[job_id] = {"state": "CANCELLED", "exit_code": "", "reason": BLOCKED_REASON}
        elif letter in ("F", "X"):
            code = int(job["Exit_status"])
            state = "COMPLETED" if code == 0 else KILLED_FOR.get(code, "FAILED")
            if "exceeded resource walltime" in comment:  # older servers report the SIGTERM (271)
                state = "TIMEOUT"
            states[job_id] = {"state": state, "exit_code": f"{code}:0"}
        elif letter in ("R", "E", "B"):
            states[job_id] = {"state": "RUNNING", "exit_code": ""}
        elif letter in ("S", "U"):
            states[job_id] = {"state": "SUSPENDED", "exit_code": ""}
        else:
            states[job_id] = {"state": "PENDING", "exit_code": "", "reason": letter}
    return states
