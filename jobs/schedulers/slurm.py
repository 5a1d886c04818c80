"""SLURM behind the scheduler interface: sbatch scripts through submitit's SlurmExecutor, job
states from one `sacct` call for all job ids of a run (never one per job), `squeue` when
accounting is off, nothing when there is no scheduler."""
from __future__ import annotations

import re
import shutil
import subprocess

from jobs.schedulers.base import JobRequest, Scheduler
from retmask.config import ConfigError


class SlurmScheduler(Scheduler):
    kind = "slurm"

    def __init__(self, profile):
        self.profile = profile

    def check(self, profile) -> None:
        check_partition(profile)

    def parameters(self, request: JobRequest) -> dict:
        params = {
            "job_name": request.name,
            "partition": request.queue,
            "time": request.minutes,
            "nodes": request.nodes,
            "ntasks_per_node": 1,
            "cpus_per_task": request.cpus,
            "mem": f"{request.mem_gb}GB",
            "signal_delay_s": request.signal_delay_s,
            "array_parallelism": request.array_parallelism,
            "setup": list(request.setup),
            # Slurm 22.05-23.02 steps no longer inherit --cpus-per-task: give it to srun too, or
            # with CPU binding every engine and launcher runs on one core.
            "srun_args": ["--cpus-per-task", str(request.cpus)]
            # A multi-node step ends when one of its tasks fails: the others would otherwise wait in
            # their collectives for the process group's timeout (30 min) before the job ends.
            + (["--kill-on-bad-exit=1"] if request.nodes > 1 else []),
            "wckey": None,  # submitit's default wckey is refused where wckeys are enforced
        }
        if request.gpus:
            if self.profile.gpu_request == "gres":
                gpu_type = self.profile.gpu_type
                params["gres"] = f"gpu:{gpu_type}:{request.gpus}" if gpu_type else f"gpu:{request.gpus}"
            else:
                params["gpus_per_node"] = request.gpus
        if request.exclusive:
            params["exclusive"] = True
        if request.account:
            params["account"] = request.account
        if request.qos:
            params["qos"] = request.qos
        return params

    def after(self, job_ids: list[str]) -> dict:
        return {"dependency": "afterok:" + ":".join(sorted(set(job_ids)))}

    def executor(self, folder: str):
        import submitit

        return submitit.SlurmExecutor(folder=folder)

    def render(self, parameters: dict, folder: str, command: str, array_size: int | None) -> str:
        from submitit.slurm.slurm import _make_sbatch_string

        return _make_sbatch_string(command=command, folder=folder, map_count=array_size, **parameters)

    def base_id(self, job_id: str) -> str:
        """afterok on an array waits for all its tasks through the array's base id."""
        return job_id.split("_")[0]

    def states(self, job_ids: list[str]) -> tuple[dict[str, dict], str]:
        return job_states(job_ids)

    def cancel(self, job_ids: list[str]) -> None:
        cancel(job_ids)

    def max_array_size(self) -> int:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            if line.strip().startswith("MaxArraySize"):
                return int(line.split("=")[1].strip())
        return 1001  # SLURM's default


def check_partition(profile) -> None:
    """The partition exists, and has GPUs if the profile asks for them."""
    if shutil.which("sinfo") is None:
        raise ConfigError("no SLURM here (sinfo not found); submit from a login node, or use --dry-run")
    out = subprocess.run(["sinfo", "-h", "-p", profile.partition, "-o", "%P %G"], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise ConfigError(f"partition {profile.partition!r} not found on this cluster (sinfo: "
                          f"{(out.stderr or 'no such partition').strip()})")
    gres = " ".join(line.split(maxsplit=1)[1] if " " in line else "" for line in out.stdout.splitlines())
    if profile.gpus_per_node and "gpu" not in gres:
        raise ConfigError(f"the profile asks for {profile.gpus_per_node} GPUs per node but partition "
                          f"{profile.partition!r} has no GPUs (gres: {gres.strip() or 'none'}); "
                          "set gpus_per_node: 0 for a CPU cluster")


def has_scheduler() -> bool:
    return shutil.which("squeue") is not None


def _expand(job_id: str) -> list[str]:
    """sacct shows a not-yet-started part of an array as 123_[4-6,9%2]: one id per task."""
    match = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job_id)
    if not match:
        return [job_id]
    base, spec = match.group(1), match.group(2).split("%")[0]
    ids = []
    for part in spec.split(","):
        start, _, end = part.partition("-")
        ids += [f"{base}_{k}" for k in range(int(start), int(end or start) + 1)]
    return ids


def job_states(job_ids: list[str]) -> tuple[dict[str, dict], str]:
    """{job id: {"state", "exit_code"}} and where it came from: "sacct", "squeue" or "none"."""
    if not job_ids or not has_scheduler():
        return {}, "none"
    bases = sorted({job_id.split("_")[0] for job_id in job_ids})
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", ",".join(bases), "--format=JobID,State,ExitCode,Reason"],
                         capture_output=True, text=True)
    if out.returncode == 0:
        return merge_queue_view(parse_sacct(out.stdout), job_ids, lambda: _squeue(bases)), "sacct"
    # Accounting off: squeue knows queued and running jobs only; the rest is read from disk.
    return _squeue(bases), "squeue"


QUEUE_ACTIVE = ("RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "RESIZING", "SUSPENDED")


def merge_queue_view(states: dict[str, dict], job_ids: list[str], queue) -> dict[str, dict]:
    """Accounting's states with the queue's view over them where the queue knows better. For the
    first seconds of a task sacct still says PENDING while squeue says RUNNING: the task runs (were
    it taken for pending, resume would cancel and resubmit a running shard, two writers of one
    file). A job submitted a moment ago may not be in accounting yet: the queue's state is taken.
    squeue has the pending reason sacct lacks. `queue()` is asked only when it can change something."""
    unknown = {job_id for job_id in job_ids if job_id not in states}
    if not unknown and not any(entry["state"] == "PENDING" for entry in states.values()):
        return states
    for job_id, entry in queue().items():
        if job_id not in states:
            if job_id in unknown:
                states[job_id] = entry
        elif entry["state"] in QUEUE_ACTIVE and states[job_id]["state"] == "PENDING":
            states[job_id] = {**states[job_id], "state": entry["state"]}
        else:
            states[job_id]["reason"] = entry["reason"]
    return states


def parse_sacct(text: str) -> dict[str, dict]:
    """`sacct -n -P -X --format=JobID,State,ExitCode,Reason` lines -> {job id: state, exit code, reason}."""
    states = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 3:
            continue
        state = parts[1].split()[0] if parts[1] else "UNKNOWN"  # "CANCELLED by 0" -> CANCELLED
        reason = parts[3].strip() if len(parts) > 3 else ""
        for job_id in _expand(parts[0]):
            states[job_id] = {"state": state, "exit_code": parts[2], **({"reason": reason} if reason not in
                                                                          ("", "None") else {})}
    return states


def _squeue(bases: list[str]) -> dict[str, dict]:
    out = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(bases), "-o", "%i|%T|%r"], capture_output=True,
                         text=True)
    states = {}
    for line in out.stdout.splitlines():
        job_id, state, reason = (line.split("|") + ["", ""])[:3]
        for expanded in _expand(job_id.strip()):
            states[expanded] = {"state": state.strip(), "exit_code": "", "reason": reason.strip()}
    return states


def cancel(job_ids: list[str]) -> None:
    if job_ids:
        subprocess.run(["scancel", *job_ids], check=False, capture_output=True)
