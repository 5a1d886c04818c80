"""Cluster profiles: data files in slurm_templates/ (or the user's own), loaded into a typed
profile. Site values (partition, account, QoS, setup lines) come from the user's profile or
overrides, never from the code."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from retmask.config import ConfigError, apply_override, from_dict
from retmask.typed_yaml import read_yaml_mapping

PROFILE_DIR = Path(__file__).resolve().parents[1] / "slurm_templates"

# Stages that need an accelerator on a GPU cluster; the others run on CPUs.
GPU_STAGES = ("toy_model", "detect", "synthesize_chosen", "synthesize_rejected", "train", "evaluate_base", "evaluate",
              "helmet_base", "helmet", "general", "judge")
# Those whose tasks may take fewer GPUs than a node has; training takes every GPU of its nodes.
PER_TASK_GPU_STAGES = tuple(stage for stage in GPU_STAGES if stage != "train")


@dataclass
class ClusterProfile:
    kind: str = "local"  # local: processes on this machine; slurm / gridengine / pbs: jobs of such a cluster
    # local
    max_parallel: int = 2
    timeout_min: int = 1440
    # slurm
    partition: str = ""
    account: str = ""
    qos: str = ""
    # A partition for CPU-only jobs, where the site has one (its account defaults to `account`;
    # QoS names are often per partition, so cpu_qos does not default to `qos`). Without it the
    # light stages ride inside the GPU jobs (jobs/units.py) and no CPU-only job is queued on the
    # GPU partition except to finish a light stage on resume.
    cpu_partition: str = ""
    cpu_account: str = ""
    cpu_qos: str = ""
    gpus_per_node: int = 0
    # GPUs of one task of a stage of PER_TASK_GPU_STAGES; unlisted stages get gpus_per_node.
    gpus_per_task: dict[str, int] = field(default_factory=dict)
    gpu_type: str = ""  # e.g. h100: asked as gpu:h100:N with gpu_request gres
    gpu_request: str = "gres"  # gres: --gres=gpu[:type]:N; gpus_per_node: --gpus-per-node=N
    cpus_per_gpu: int = 8
    cpus_per_task: int = 4  # CPU-only stages
    mem_per_gpu_gb: int = 64
    mem_gb: int = 16  # CPU-only stages
    time_limit_min: dict[str, int] = field(default_factory=lambda: {"default": 240})
    train_nodes: int = 1
    # Training processes a node where nodes have no GPUs (gloo where NCCL would run: the local test
    # clusters); 0 with GPUs, where training runs one process a GPU.
    train_cpu_processes: int = 0
    setup: list[str] = field(default_factory=list)  # lines run before each job: modules, env activation
    array_parallelism: int = 64
    max_array_size: int = 0  # 0: read MaxArraySize from the scheduler
    signal_delay_s: int = 120  # USR2 this long before the time limit, so the job can checkpoint and requeue
    # gridengine / pbs: resource types by the GPUs they bring (TSUBAME 4.0: {4: node_f, 1: gpu_1, 0: cpu_4};
    # ABCI 3.0: {8: rt_HF, 1: rt_HG, 0: rt_HC}); without them a job asks for CPUs (and GPUs) by count.
    resource_types: dict[int, str] = field(default_factory=dict)
    parallel_environment: str = "smp"
    # gridengine without resource types: the parallel environment a multi-node training job asks
    # for, one whose allocation_rule is a fixed slot count per host (the CPUs of one node's task),
    # so that its nodes x that many slots are that many hosts (an MPI PE of a plain Grid Engine)
    node_parallel_environment: str = ""
    max_time_limit_min: int = 0  # the site's cap on a job's time (TSUBAME: 24 h); 0 = none

    KINDS = ("local", "slurm", "gridengine", "pbs")

    def validate(self, key: str = "profile") -> None:
        if self.kind not in self.KINDS:
            raise ConfigError(f"{key}.kind: {self.kind!r} is not one of {', '.join(self.KINDS)}")
        if self.max_parallel < 1:
            raise ConfigError(f"{key}.max_parallel must be >= 1, got {self.max_parallel}")
        if self.kind == "local":
            return
        if self.kind == "slurm" and not self.partition:
            raise ConfigError(f"{key}.partition: missing; set your cluster's partition in your own profile or "
                              "with --profile-set partition=NAME")
        if self.gpu_request not in ("gres", "gpus_per_node"):
            raise ConfigError(f"{key}.gpu_request: {self.gpu_request!r} is not one of gres, gpus_per_node")
        if "default" not in self.time_limit_min:
            raise ConfigError(f"{key}.time_limit_min needs a 'default' entry (minutes)")
        for stage, minutes in self.time_limit_min.items():
            # SLURM reads 0 as UNLIMITED and wraps negatives into years: neither is meant.
            if minutes < 1:
                raise ConfigError(f"{key}.time_limit_min.{stage}: {minutes} minutes; give a positive number of "
                                  "minutes")
        for stage, gpus in self.gpus_per_task.items():
            if stage not in PER_TASK_GPU_STAGES:
                raise ConfigError(f"{key}.gpus_per_task: {stage!r} is not one of {', '.join(PER_TASK_GPU_STAGES)} "
                                  "(training always takes every GPU of its nodes)")
            if not 1 <= gpus <= self.gpus_per_node:
                raise ConfigError(f"{key}.gpus_per_task.{stage}: {gpus} GPUs; expected 1..gpus_per_node "
                                  f"({self.gpus_per_node})")
        if self.kind == "gridengine" and self.train_nodes > 1 and not (self.resource_types or
                                                                      self.node_parallel_environment):
            raise ConfigError(f"{key}.train_nodes: {self.train_nodes} on Grid Engine needs resource_types naming a "
                              "whole-node type (TSUBAME's node_f), or node_parallel_environment naming a parallel "
                              "environment whose allocation_rule is a fixed slot count per host, so that each node "
                              "is asked for as one; the slots of another parallel environment may land anywhere")
        if self.max_time_limit_min and max(self.time_limit_min.values()) > self.max_time_limit_min:
            stage, minutes = max(self.time_limit_min.items(), key=lambda item: item[1])
            raise ConfigError(f"{key}.time_limit_min.{stage}: {minutes} minutes is over the site's cap of "
                              f"{self.max_time_limit_min}")
        if self.train_cpu_processes < 0 or (self.train_cpu_processes and self.gpus_per_node):
            raise ConfigError(f"{key}.train_cpu_processes: {self.train_cpu_processes}; it is for nodes without GPUs "
                              f"(this profile's have {self.gpus_per_node}, which train one process each): give 0, or "
                              "gpus_per_node: 0")
        if self.train_nodes < 1 or (self.train_nodes > 1 and self.train_processes() < 1):
            raise ConfigError(f"{key}.train_nodes: {self.train_nodes} needs train_nodes >= 1 and, on more than one "
                              "node, GPUs per node (or train_cpu_processes on nodes without GPUs)")

    def cpus_for(self, gpus: int) -> int:
        """The CPUs a task with `gpus` GPUs asks for (cpus_per_task without GPUs)."""
        return self.cpus_per_gpu * gpus if gpus else self.cpus_per_task

    def train_processes(self) -> int:
        """Training processes on each node: one a GPU, else train_cpu_processes (0: no launcher)."""
        return self.gpus_per_node or self.train_cpu_processes

    def time_limit(self, stage: str) -> int:
        return self.time_limit_min.get(stage, self.time_limit_min["default"])

    def stage_gpus(self, stage: str) -> int:
        if stage in PER_TASK_GPU_STAGES:
            return self.gpus_per_task.get(stage, self.gpus_per_node)
        return self.gpus_per_node if stage in GPU_STAGES else 0


def available_profiles() -> list[str]:
    return sorted(path.stem for path in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str, overrides: list[str] = ()) -> ClusterProfile:
    """A profile by name (a file of slurm_templates/) or by path to a user's own YAML file,
    with `key=value` overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"cluster profile {name_or_path!r} not found; known profiles: "
                          f"{', '.join(available_profiles())}, or give a path to a profile YAML")
    data = read_yaml_mapping(path, "cluster profile")  # not YAML, or not a mapping: one line naming the file
    for assignment in overrides:
        apply_override(data, assignment)
    profile = from_dict(ClusterProfile, data, key=f"profile {path.stem}")
    profile.validate(f"profile {path.stem}")
    return profile
