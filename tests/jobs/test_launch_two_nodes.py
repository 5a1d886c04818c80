"""The toy trained across two nodes of the local SLURM cluster (partition two-nodes: two slurmds, each
in its own network namespace and hostname, see slurm_templates/local-cluster/) through `retmask
submit --profile-set train_nodes=2`, as on a real cluster: one task per node, a rendezvous on the
first node's address, DDP over gloo under DeepSpeed ZeRO-2. The same on the two hosts of the local
Grid Engine (queue nodes.q, slurm_templates/local-gridengine/), whose second task `qrsh -inherit`
starts, to the same weights.

One run does it all: accelerate's default ports are taken on the first node for its whole length;
the second node's training process is killed once a checkpoint is written; the first node's task
must end within a bounded time (not hang in its collectives), `status` must name the failure, and
`resume` must continue from the checkpoint to the weights of an uninterrupted one-node run with the
same global batch and seed."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from jobs.cli import main
from jobs.local import LocalPipeline
from jobs.runner import load_run_config
from jobs.stages.train import trained_model_dir, trainer_dir
from retmask.config import load_config, save_config
from retmask.io import read_json
from retmask.rundir import RunDir
from retmask.training import latest_checkpoint
from tests.conftest import REPO, TOY_PAIRS
from tests.helpers.cluster_runs import wait_until_idle

NODES = ("retmask-node1", "retmask-node2")
STEPS, SAVE_STEPS = 12, 4
# global batch 16 (configs/tiny.yaml) = 8 a process x 1 x 2 nodes, or 8 x 2 accumulated on one
SETTINGS = [*TOY_PAIRS, "train.per_device_batch_size=8", f"train.max_steps={STEPS}", f"train.save_steps={SAVE_STEPS}",
            f"train.deepspeed={REPO / 'configs/deepspeed/zero2.json'}"]
CONFIG = str(REPO / "configs" / "tiny.yaml")
TAKEN_PORTS = (29500, 29400)  # accelerate's and torchrun's defaults
FAILED_WITHIN_S = 60  # from the kill to the job's end


@pytest.fixture
def two_nodes(local_slurm):
    listed = subprocess.run(["sinfo", "-h", "-p", "two-nodes", "-o", "%N"], capture_output=True, text=True)
    if not listed.stdout.strip():
        pytest.skip("the local cluster has no two-node partition (no network namespaces on this machine)")


@pytest.fixture
def two_grid_engine_hosts(local_gridengine):
    if subprocess.run(["qconf", "-sq", "nodes.q"], capture_output=True).returncode != 0:
        pytest.skip("the local Grid Engine has no queue of two nodes (no network namespaces on this machine)")


@pytest.fixture(scope="module")
def one_node(tmp_path_factory, toy_pairs_run) -> RunDir:
    """The toy trained on one node with the same global batch (accumulated) and seed."""
    one = RunDir(tmp_path_factory.mktemp("one-node") / "run")
    shutil.copytree(toy_pairs_run, one.root)
    save_config(load_config(CONFIG, SETTINGS), one.config_path)
    LocalPipeline(load_run_config(one), one, log=lambda line: None, until="train").execute(max_parallel=2)
    return one


def _ports_taken_on_the_first_node():
    code = ("import socket, sys, time\n"
            "held = [socket.create_server(('0.0.0.0', p)) for p in map(int, sys.argv[1:])]\n"
            "print('held', flush=True); time.sleep(3600)")
    holder = subprocess.Popen(["nsenter", f"--net=/run/netns/{NODES[0]}", sys.executable, "-c", code,
                               *map(str, TAKEN_PORTS)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _processes(run: RunDir, rank: str) -> list[int]:
    """PIDs of the run's training processes of global rank `rank`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            environ = dict(item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
        except OSError:
            continue
        if b"jobs.stages.train_entry" in command and str(run.root).encode() in command and \
                environ.get(b"RANK") == rank.encode():
            found.append(int(proc.name))
    return found


def _checkpoint_step(run: RunDir) -> int:
    checkpoint = latest_checkpoint(trainer_dir(run))
    return int(checkpoint.name.split("-")[1]) if checkpoint else 0


def _weights(run: RunDir) -> dict:
    return load_file(next(trained_model_dir(run).glob("*.safetensors")))


def _train_logs(run: RunDir) -> str:
    return "".join(path.read_text(errors="replace") for path in sorted(run.log_dir("train").rglob("*_log.out")))


def _submit(profile: str, run: RunDir) -> list[str]:
    given = [arg for setting in SETTINGS for arg in ("--set", setting)]
    return ["submit", CONFIG, "--run-dir", str(run.root), "--cluster", profile, "--profile-set", "train_nodes=2",
            "--until", "train", *given]


def _trained_as_one_node(two: RunDir, one: RunDir) -> None:
    """Two nodes of one process each, one machine rank each, ended with the one-node run's weights."""
    summary = read_json(two.stage_dir("train") / "summary.json")
    assert summary["world_size"] == 2 and summary["gradient_accumulation_steps"] == 1, summary
    assert summary["global_step"] == STEPS, summary
    assert read_json(one.stage_dir("train") / "summary.json")["gradient_accumulation_steps"] == 2
    # one task on each node, each with its own machine rank, meeting on rank 0's node (the job's
    # first host: Grid Engine may pick either)
    started = re.findall(r"training node (\d) of 2 on (\S+): rendezvous at ([^:]+):", _train_logs(two))
    ranks = {int(rank): host for rank, host, _ in started}
    assert sorted(ranks) == [0, 1] and sorted(ranks.values()) == sorted(NODES), started
    assert {meeting for _, _, meeting in started} == {ranks[0]}, started

    base = load_file(next(Path(load_run_config(one).model.path).glob("*.safetensors")))
    ones, twos = _weights(one), _weights(two)
    assert ones.keys() == twos.keys()
    moved = max((ones[name] - base[name]).abs().max().item() for name in ones if name in base)  # tied: no lm_head
    apart = max((ones[name] - twos[name]).abs().max().item() for name in ones)
    assert moved > 1e-4 and apart < 1e-6, (moved, apart)


def test_two_nodes_train_as_one_and_a_lost_node_resumes_to_the_same_weights(two_nodes, one_node, toy_pairs_run,
                                                                             tmp_path, capsys):
    two = RunDir(tmp_path / "two-nodes")
    shutil.copytree(toy_pairs_run, two.root)
    submit = _submit("local-slurm-two-nodes", two)
    holder = _ports_taken_on_the_first_node()
    try:
        assert main(submit) == 0, capsys.readouterr().err
        deadline = time.time() + 300
        while _checkpoint_step(two) < SAVE_STEPS or not _processes(two, "1"):
            assert time.time() < deadline and not (two.stage_dir("train") / "summary.json").exists(), \
                "no checkpoint written while both nodes trained"
            time.sleep(0.1)
        for pid in _processes(two, "1"):  # the second node's training process, as a lost node leaves it
            os.kill(pid, signal.SIGKILL)
        killed = time.time()
        stages, _, _ = wait_until_idle(two, timeout=FAILED_WITHIN_S, settle_s=3)
        assert time.time() - killed < FAILED_WITHIN_S + 5  # the first node did not wait for its peer
        train = next(stage for stage in stages if stage.name == "train")
        assert [s.state for s in train.states] == ["failed"]
        assert not (two.stage_dir("train") / "summary.json").exists()
        resumed_from = _checkpoint_step(two)
        assert SAVE_STEPS <= resumed_from < STEPS

        capsys.readouterr()
        main(["status", str(two.root)])
        status = capsys.readouterr().out
        # the failure named is the second node's, not the first's stop that followed
        assert "train shard 0 (job " in status and "'--machine_rank', '1'" in status, status

        assert main(["resume", str(two.root)]) == 0, capsys.readouterr().err
        wait_until_idle(two, timeout=300, settle_s=3)
    finally:
        holder.kill()
        subprocess.run(["scancel", "--name", f"retmask-{load_run_config(two).name}-train"], check=False)

    assert read_json(two.stage_dir("train") / "summary.json")["resumed_from_step"] == resumed_from
    _trained_as_one_node(two, one_node)


def test_two_grid_engine_hosts_train_as_one(two_grid_engine_hosts, one_node, toy_pairs_run, tmp_path, capsys):
    """PE node puts a slot on each host; the job script runs node 0 and starts node 1 on the other
    host with `qrsh -inherit`."""
    two = RunDir(tmp_path / "two-hosts")
    shutil.copytree(toy_pairs_run, two.root)
    # a PE whose slots may share a host is refused on the login node, before any job
    assert main([*_submit("local-gridengine-two-nodes", two), "--profile-set", "node_parallel_environment=smp"]) == 2
    assert "smp's allocation_rule is $pe_slots; a multi-node job puts one node's training task on each host" in capsys.readouterr().err
    assert not two.log_dir("train").exists()
    try:
        assert main(_submit("local-gridengine-two-nodes", two)) == 0, capsys.readouterr().err
        stages, _, _ = wait_until_idle(two, timeout=300)
    finally:
        subprocess.run(["qdel", f"retmask-{load_run_config(two).name}-train"], check=False, capture_output=True)
    assert [s.state for stage in stages for s in stage.states if stage.name == "train"] == ["done"], \
        _train_logs(two)[-3000:]
    _trained_as_one_node(two, one_node)
