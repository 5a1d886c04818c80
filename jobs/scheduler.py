"""Reading job states from SLURM: one `sacct` call for all job ids of a run (never one per job),
`squeue` when accounting is off, nothing when there is no scheduler."""
from __future__ import annotations

import re
import shutil
import subprocess

# sacct states -> the failure class a user acts on (raise time, raise memory, just resubmit...)
FAILURE_CLASS = {
    "OUT_OF_MEMORY": "OOM",
    "TIMEOUT": "TIMEOUT",
    "PREEMPTED": "PREEMPTED",
    "NODE_FAIL": "NODE_FAIL",
    "BOOT_FAIL": "NODE_FAIL",
    "CANCELLED": "CANCELLED",
    "DEADLINE": "TIMEOUT",
    "FAILED": "FAILED",
}
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD"}


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
        states = parse_sacct(out.stdout)
        # sacct has no pending reason, and a job submitted a moment ago may not be in the
        # accounting database yet (it would look missing, and resume would submit it twice).
        unknown = {job_id for job_id in job_ids if job_id not in states}
        if unknown or any(entry["state"] == "PENDING" for entry in states.values()):
            for job_id, entry in _squeue(bases).items():
                if job_id in states:
                    states[job_id]["reason"] = entry["reason"]
                elif job_id in unknown:
                    states[job_id] = entry
        return states, "sacct"
    # Accounting off: squeue knows queued and running jobs only; the rest is read from disk.
    return _squeue(bases), "squeue"


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
