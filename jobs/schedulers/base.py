"""What the pipeline needs from a batch scheduler, whichever it is: turn a job request into the
executor's parameters, submit through a submitit executor (pickling, requeue and job folders stay
submitit's), chain jobs, read every job's state in one call per refresh, cancel.

States come back in one vocabulary (SLURM's names: PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT,
OUT_OF_MEMORY, CANCELLED, ...), so status, resume and logs read all schedulers alike.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

# Scheduler states -> the failure class a user acts on (raise time, raise memory, just resubmit...)
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
# A job that waits on a failed dependency (or was cancelled for it): resume resubmits it.
BLOCKED_REASON = "DependencyNeverSatisfied"


@dataclass(frozen=True)
class JobRequest:
    """What one job (or each task of an array) asks for, in the scheduler's terms of none."""
    name: str
    queue: str  # SLURM partition, PBS queue, Grid Engine queue
    minutes: int
    cpus: int  # per task
    mem_gb: int  # per task
    gpus: int = 0  # per node
    nodes: int = 1
    account: str = ""
    qos: str = ""
    exclusive: bool = False
    setup: tuple[str, ...] = ()
    array_parallelism: int = 64
    signal_delay_s: int = 120
    extra: dict = field(default_factory=dict)  # scheduler-specific values taken from the profile


class Scheduler(ABC):
    kind: str = ""

    @abstractmethod
    def check(self, profile) -> None:
        """Checks only the scheduler can answer (the queue exists, has GPUs...); raise ConfigError."""

    @abstractmethod
    def parameters(self, request: JobRequest) -> dict:
        """The executor's parameters for this request."""

    @abstractmethod
    def after(self, job_ids: list[str]) -> dict:
        """Parameters making a job start only once these jobs (or arrays, by their base id) succeeded."""

    @abstractmethod
    def executor(self, folder: str):
        """A submitit executor writing its job files into `folder`."""

    @abstractmethod
    def render(self, parameters: dict, folder: str, command: str, array_size: int | None) -> str:
        """The submission script the executor would write (dry runs, golden files)."""

    @abstractmethod
    def base_id(self, job_id: str) -> str:
        """The id a dependency names to wait for a whole array (or the job itself)."""

    @abstractmethod
    def states(self, job_ids: list[str]) -> tuple[dict[str, dict], str]:
        """{job id: {"state", "exit_code"[, "reason"]}} in one query, and where it came from
        ("none" when the scheduler cannot be asked here)."""

    @abstractmethod
    def cancel(self, job_ids: list[str]) -> None: ...

    @abstractmethod
    def max_array_size(self) -> int:
        """How many tasks one array may hold here."""


def resource_type_for(resource_types: dict[int, str], gpus: int) -> str:
    """The smallest resource type with at least `gpus` GPUs ({GPUs: type}, e.g. {4: node_f, 1: gpu_1,
    0: cpu_4}); "" when the profile names none."""
    fitting = sorted(count for count in resource_types if count >= gpus)
    return resource_types[fitting[0]] if fitting else ""


def task_cpus() -> int:
    """The CPUs the scheduler gave this task (0 when not under one): SLURM's count, the count a
    Grid Engine job script exports (a resource type brings CPUs its slot count does not show)."""
    return int(os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("RETMASK_CPUS") or 0)
