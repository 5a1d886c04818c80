"""Grid Engine behind the scheduler interface (TSUBAME 4.0): job scripts through the submitit
plugin of gridengine_executor.py, `-hold_jid` dependencies (failures hold dependents: exit 100),
states from one `qstat -xml` per refresh, and from one `qacct` for jobs that left the queue."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ElementTree

from jobs.schedulers.base import BLOCKED_REASON, JobRequest, Scheduler, resource_type_for
from jobs.schedulers.gridengine_executor import HOLD_DEPENDENTS, make_qsub_script, grid_engine_id
from retmask.config import ConfigError


class GridEngineScheduler(Scheduler):
    kind = "gridengine"

    def __init__(self, profile):
        self.profile = profile

    def check(self, profile) -> None:
        if shutil.which("qconf") is None:
            raise ConfigError("no Grid Engine here (qconf not found); submit from a login node, or use --dry-run")
        if profile.partition:
            out = subprocess.run(["qconf", "-sql"], capture_output=True, text=True)
            queues = out.stdout.split()
            if profile.partition not in queues:
                raise ConfigError(f"queue {profile.partition!r} not found on this cluster (queues: "
                                  f"{', '.join(queues) or 'none'})")
        if profile.train_nodes > 1 and not profile.resource_types:
            check_node_parallel_environment(profile.node_parallel_environment,
                                            profile.cpus_for(profile.stage_gpus("train")))

    def parameters(self, request: JobRequest) -> dict:
        """TSUBAME-style sites ask for resource types (`node_f=1`, `gpu_1=1`, `cpu_4=1`), chosen
        by the GPUs a job needs (profile.resource_types); plain Grid Engine for slots of a
        parallel environment."""
        p = self.profile
        params = {
            "job_name": request.name,
            "queue": request.queue,
            "time": request.minutes,
            "array_parallelism": request.array_parallelism,
            # the task's CPU count, for its thread pools (a resource type's slots do not say it)
            "setup": [f"export RETMASK_CPUS={request.cpus}", *request.setup],
            "signal_delay_s": request.signal_delay_s,
        }
        resource_type = resource_type_for(p.resource_types, request.gpus)
        if resource_type:
            params["resources"] = {resource_type: request.nodes}
            params["nodes"] = request.nodes
            params["cpus"] = 1  # the resource type brings its CPUs
        elif request.nodes > 1:  # each node's CPUs on a host of its own (check_node_parallel_environment)
            params["cpus"] = request.cpus * request.nodes
            params["pe"] = p.node_parallel_environment
            params["nodes"] = request.nodes
        else:
            params["cpus"] = request.cpus
            params["pe"] = p.parallel_environment
        if request.account:
            params["group"] = request.account
        return params

    def after(self, job_ids: list[str]) -> dict:
        """A whole array by its id, one task of an earlier array as `job.task` (1-based)."""
        return {"hold_jid": sorted({grid_engine_id(job_id) if re.fullmatch(r"\d+_\d+", job_id) else job_id
                                    for job_id in job_ids})}

    def executor(self, folder: str):
        from jobs.schedulers.gridengine_executor import GridEngineExecutor

        return GridEngineExecutor(folder=folder)

    def render(self, parameters: dict, folder: str, command: str, array_size: int | None) -> str:
        return make_qsub_script(command=command, folder=folder, map_count=array_size, **parameters)

    def base_id(self, job_id: str) -> str:
        return job_id.split("_")[0]

    def states(self, job_ids: list[str]) -> tuple[dict[str, dict], str]:
        if not job_ids or shutil.which("qstat") is None:
            return {}, "none"
        bases = {job_id.split("_")[0] for job_id in job_ids}
        out = subprocess.run(["qstat", "-u", "*", "-xml"], capture_output=True, text=True)
        states = {k: v for k, v in parse_qstat_xml(out.stdout).items() if k.split("_")[0] in bases}
        if any(entry["state"] == "FAILED" for entry in states.values()):
            # Dependencies are this run's only holds: behind a failed task they wait for good.
            for entry in states.values():
                if entry["reason"] == "hqw":
                    entry["reason"] = BLOCKED_REASON
        gone = [job_id for job_id in job_ids if job_id not in states]
        if gone:  # left the queue: accounting knows how they ended
            finished = parse_qacct(_qacct_since(min(int(job_id.split("_")[0]) for job_id in gone)))
            states.update({k: v for k, v in finished.items() if k in gone})
        return states, "qstat+qacct"

    def cancel(self, job_ids: list[str]) -> None:
        if job_ids:
            subprocess.run(["qdel", *[grid_engine_id(job_id) for job_id in job_ids]], check=False,
                           capture_output=True)

    def max_array_size(self) -> int:
        out = subprocess.run(["qconf", "-sconf"], capture_output=True, text=True)
        match = re.search(r"^max_aj_tasks\s+(\d+)", out.stdout, re.MULTILINE)
        return int(match.group(1)) if match and int(match.group(1)) > 0 else 75000  # Grid Engine's default


def check_node_parallel_environment(name: str, cpus_per_node: int) -> None:
    """A multi-node job asks for nodes x cpus_per_node slots of `name`: only a fixed allocation_rule
    of cpus_per_node slots per host makes those slots that many hosts, one node's task each."""
    shown = subprocess.run(["qconf", "-sp", name], capture_output=True, text=True)
    if shown.returncode != 0:
        listed = subprocess.run(["qconf", "-spl"], capture_output=True, text=True).stdout.split()
        raise ConfigError(f"node_parallel_environment: {name!r} is not a parallel environment of this cluster "
                          f"({', '.join(listed) or 'none'})")
    found = re.search(r"^allocation_rule\s+(\S+)", shown.stdout, re.MULTILINE)
    rule = found.group(1) if found else "?"
    if rule != str(cpus_per_node):
        raise ConfigError(f"node_parallel_environment: {name}'s allocation_rule is {rule}; a multi-node job puts "
                          f"one node's training task on each host, with its {cpus_per_node} CPU(s) as slots, so the "
                          f"rule must be {cpus_per_node}: name a parallel environment whose allocation_rule is "
                          f"{cpus_per_node}, or set cpus_per_task (cpus_per_gpu with GPUs) to its rule")


# Grid Engine's state letters -> the shared vocabulary (jobs/schedulers/base.py)
def _state(letters: str) -> str:
    if "E" in letters:
        return "FAILED"  # error state: a task that exited 100 (or could not start); dependents held
    if "d" in letters:
        return "CANCELLED"
    if "s" in letters or "S" in letters or "T" in letters:
        return "SUSPENDED"
    if "r" in letters or "t" in letters or "R" in letters:
        return "RUNNING"
    return "PENDING"


def _tasks(spec: str) -> list[int]:
    """`1-4:1`, `2,5-6` or `3` -> task numbers (1-based)."""
    tasks = []
    for part in spec.split(","):
        span, _, step = part.partition(":")
        start, _, end = span.partition("-")
        tasks += list(range(int(start), int(end or start) + 1, int(step or 1)))
    return tasks


def parse_qstat_xml(text: str) -> dict[str, dict]:
    """`qstat -u '*' -xml` -> {submitit job id: state} (array tasks as `<job>_<task - 1>`)."""
    if not text.strip():
        return {}
    states = {}
    for job in ElementTree.fromstring(text).iter("job_list"):
        number = job.findtext("JB_job_number", "").strip()
        letters = job.findtext("state", "").strip()
        tasks = job.findtext("tasks", "").strip()
        entry = {"state": _state(letters), "exit_code": f"{HOLD_DEPENDENTS}:0" if "E" in letters else "",
                 "reason": letters}
        if tasks:
            for task in _tasks(tasks):
                states[f"{number}_{task - 1}"] = dict(entry)
        else:
            states[number] = entry
    return states


def _qacct_since(job_number: int) -> str:
    """Accounting records of the run's jobs that left the queue, in one call."""
    del job_number  # qacct filters by time, not by a range of ids: a day back covers a queued run
    begin = time.strftime("%y%m%d%H%M", time.localtime(time.time() - 7 * 86400))
    out = subprocess.run(["qacct", "-b", begin, "-j"], capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else ""


def parse_qacct(text: str) -> dict[str, dict]:
    """`qacct -j` records -> {submitit job id: state, exit code}: exit 0 with `failed 0` is
    COMPLETED, a kill at h_rt TIMEOUT, any other failure FAILED."""
    states = {}
    for block in re.split(r"^=+\s*$", text, flags=re.MULTILINE):
        fields = dict(line.split(None, 1) for line in block.strip().splitlines() if len(line.split(None, 1)) == 2)
        if "jobnumber" not in fields:
            continue
        task = fields.get("taskid", "undefined").strip()
        job_id = fields["jobnumber"].strip() + (f"_{int(task) - 1}" if task.isdigit() else "")
        exit_status = int(fields.get("exit_status", "0").split()[0])
        failed = fields.get("failed", "0").strip()
        if failed.startswith("0") and exit_status == 0:
            state = "COMPLETED"
        elif "h_rt" in failed or (exit_status in (137, 138) and "limit" in failed):
            state = "TIMEOUT"
        else:
            state = "FAILED"
        states[job_id] = {"state": state, "exit_code": f"{exit_status}:0"}
    return states
