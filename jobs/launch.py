"""Multi-GPU / multi-node training launch: one task per node, each running `accelerate launch`
with a static rendezvous on the first node of the allocation, at a port chosen free there.

Static, not c10d: accelerate's `--same_network` passes the rendezvous as master address and port,
which torchrun's c10d backend ignores (its agents met on port 29400 whatever was asked, and it
ranks the nodes in the order they arrive, not by the scheduler's node rank). DeepSpeed runs under
accelerate's `standard` multi-node launcher (torchrun on each node): its default, pdsh, would
itself ssh to every host from the first.

The machine rank is read on each node when its task starts, from the scheduler's job environment
(SLURM_NODEID under srun; RETMASK_NODE_RANK for the tasks Grid Engine and PBS scripts start per
node), never expanded once in the batch script, which would give every node rank 0.
"""
from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time

from submitit.helpers import Checkpointable

from jobs.profiles import ClusterProfile
from retmask.config import ExperimentConfig


# how each scheduler's per-node task learns its machine rank and the rendezvous host
NODE_RANK_SOURCES = {
    "slurm": ("$SLURM_NODEID", "<first host of $SLURM_JOB_NODELIST>"),
    "gridengine": ("$RETMASK_NODE_RANK", "<first host of $PE_HOSTFILE>"),
    "pbs": ("$RETMASK_NODE_RANK", "<first host of $PBS_NODEFILE>"),
}


def accelerate_command(cfg: ExperimentConfig, profile: ClusterProfile, run_root: str, machine_rank: str,
                       main_host: str, port: int | str, python: str = sys.executable) -> list[str]:
    """`accelerate launch` by the job's own python: a task a scheduler starts on another node (Grid
    Engine's qrsh -inherit) has the execd's PATH, where no `accelerate` script may be."""
    nodes, per_node = profile.train_nodes, profile.train_processes()
    command = [python, "-m", "accelerate.commands.launch", "--num_machines", str(nodes), "--num_processes",
               str(nodes * per_node), "--machine_rank", machine_rank, "--main_process_ip", main_host,
               "--main_process_port", str(port), "--rdzv_backend", "static", "--same_network"]
    if cfg.train.deepspeed:
        command += ["--use_deepspeed", "--deepspeed_config_file", cfg.train.deepspeed,
                    "--deepspeed_multinode_launcher", "standard"]
    else:
        command += ["--multi_gpu"] if nodes * per_node > 1 else []  # on CPUs too: DDP over gloo
    if cfg.train.bf16:
        command += ["--mixed_precision", "bf16"]
    return command + ["-m", "jobs.stages.train_entry", run_root]


def describe_launch(cfg: ExperimentConfig, profile: ClusterProfile, run_root: str,
                    python: str = sys.executable) -> str:
    """The per-node command with its runtime values named, and the batch arithmetic, for dry runs
    and golden files."""
    from retmask.training import gradient_accumulation

    one_node = profile.kind != "slurm" and profile.train_nodes == 1  # its one task: rank 0, here
    rank, host = ("0", "<this host>") if one_node else NODE_RANK_SOURCES.get(profile.kind, ("0", "<this host>"))
    command = accelerate_command(cfg, profile, run_root, rank, host, "<a free port of the first host>", python)
    processes = profile.train_nodes * profile.train_processes()
    what = "GPUs" if profile.gpus_per_node else "CPU processes"
    t = cfg.train
    steps = gradient_accumulation(t.global_batch_size, t.per_device_batch_size, processes)
    return (" ".join(shlex.quote(part) if not part.startswith(("$", "<")) else part for part in command) + "\n"
            f"global batch {t.global_batch_size} = per-device batch {t.per_device_batch_size} x gradient "
            f"accumulation {steps} x {processes} {what} ({profile.train_nodes} node(s) x {profile.train_processes()})")


def this_node() -> tuple[str, str]:
    """(this node's machine rank, the first host of the job), as the job environment of the
    scheduler running this task tells them."""
    import submitit

    env = submitit.JobEnvironment()
    return str(env.node), env.hostnames[0]


def _job_key() -> str:
    """This job's attempt: a requeued job never reads its previous attempt's port."""
    job = os.environ.get("SLURM_JOB_ID") or os.environ.get("JOB_ID") or os.environ.get("PBS_JOBID") or "local"
    attempt = os.environ.get("SLURM_RESTART_COUNT") or os.environ.get("RESTARTED") or "0"
    return f"{job}-{attempt}"


def rendezvous_port(run, rank: str, timeout_s: float = 600) -> int:
    """A port free on the first node, chosen there and shared through the run directory: a fixed
    port collides with another job's rendezvous on a shared node. Keyed by job and restart, so a
    requeued job never reads its previous attempt's port."""
    from retmask.io import write_text

    path = run.log_dir("train") / f"rendezvous-{_job_key()}.port"
    if rank == "0":
        with socket.socket() as probe:  # a port taken on this host is never chosen
            probe.bind(("", 0))
            port = probe.getsockname()[1]
        write_text(path, str(port))
        return port
    deadline = time.time() + timeout_s
    while not path.is_file():
        if time.time() > deadline:
            raise TimeoutError(f"node 0 of the training job did not publish its rendezvous port in {path}")
        time.sleep(1)
    return int(path.read_text())


class TrainingLaunch(Checkpointable):
    """The training job as a whole: requeued by submitit on time limit or preemption, it
    resumes from the latest checkpoint (see jobs/stages/train.py)."""

    def __init__(self, before: tuple[str, ...] = (), after: tuple[str, ...] = (), waits_for: tuple[str, ...] = (),
                 shared: dict[str, str] | None = None):
        # light stages hosted (jobs/units.py), the jobs' stages it starts after, and the stages it
        # takes from another run of its study
        self.before, self.after, self.waits_for = tuple(before), tuple(after), tuple(waits_for)
        self.shared = dict(shared or {})

    def __call__(self, run_root: str) -> str:
        return launch_training(run_root, self.before, self.after, self.waits_for, self.shared)


def launch_training(run_root: str, before=(), after=(), waits_for=(), shared: dict[str, str] | None = None) -> str:
    """Runs on every node of the training job (one task per node)."""
    from jobs.pipeline import build_stages, stage_fingerprints
    from jobs.profiles import ClusterProfile
    from jobs.runner import load_run_config, run_light_stages, take_inputs
    from retmask.rundir import RunDir

    run = RunDir(run_root)
    take_inputs(run, waits_for, shared)
    run_light_stages(run, before, only_when_ready=False)  # every node: the first computes, the rest wait
    cfg = load_run_config(run)
    profile = ClusterProfile(**{k: v for k, v in run.read_manifest()["profile"].items()})
    rank, main_host = this_node()  # read here, on this node
    port = rendezvous_port(run, rank)
    print(f"training node {rank} of {profile.train_nodes} on {socket.gethostname()}: rendezvous at "
          f"{main_host}:{port}", flush=True)
    started = time.perf_counter()
    # the job's Python environment leads PATH, as an activated one would: a task a scheduler starts on
    # another node has the daemon's PATH, where another ninja rebuilds DeepSpeed's ops at every start
    environment = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable),
                                                          os.environ.get("PATH", "")])}
    subprocess.run(accelerate_command(cfg, profile, run_root, rank, main_host, port), check=True, env=environment)
    if rank == "0":
        stages = build_stages(cfg)
        run.mark_done("train", 0, stage_fingerprints(cfg, stages)["train"], time.perf_counter() - started)
        run_light_stages(run, after, only_when_ready=True)
    return "done"
