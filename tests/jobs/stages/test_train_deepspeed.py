"""DPO training under DeepSpeed ZeRO-2 and ZeRO-3 with 2 processes on CPU (gloo): the stage
trains, logs every step once, and saves a whole model that loads with `from_pretrained`.

ZeRO-2 runs the cluster's own launch command (`jobs.launch.accelerate_command`: `accelerate launch
--use_deepspeed ... -m jobs.stages.train_entry RUN`). ZeRO-3 runs under the `deepspeed` launcher through a
small entry script: that launcher puts `--local_rank=N` before the script's arguments, and on CPU
DeepSpeed's own communication layer must be up before TRL loads the reference model under
`zero.Init` (on GPUs accelerate does that; with `use_cpu` it starts plain torch.distributed
instead, and `zero.Init` then sees a world of 1 and rejects the batch sizes).
"""
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jobs.launch import accelerate_command
from jobs.profiles import ClusterProfile
from jobs.runner import load_run_config
from jobs.stages.train import train_log_path, trained_model_dir
from retmask.config import load_config, save_config
from retmask.io import read_json, read_jsonl
from retmask.rundir import RunDir
from tests.conftest import REPO, TOY_PAIRS

STEPS = 3  # step 1 runs at the warm-up's zero rate; the weights move from step 2 on
TRAIN_OVERRIDES = [f"train.max_steps={STEPS}", "train.per_device_batch_size=8", "train.global_batch_size=16",
                   "train.logging_steps=1", "train.save_steps=100", "train.bf16=false",
                   "train.gradient_checkpointing=false"]
PROCESSES = 2
TIMEOUT_S = 900  # the first DeepSpeed run on a machine compiles its CPU shared-memory comm op (~1.5 min)

ENTRY = '''\
import argparse

import deepspeed

parser = argparse.ArgumentParser()
parser.add_argument("run")
parser.add_argument("--local_rank", type=int, default=-1)  # the deepspeed launcher adds it; LOCAL_RANK says the same
args = parser.parse_args()
deepspeed.init_distributed(dist_backend="gloo")

from jobs.stages.train_entry import main  # noqa: E402

main(args.run)
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", DS_ACCELERATOR="cpu", CUDA_VISIBLE_DEVICES="",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _command(launcher: str, cfg, run: RunDir, tmp_path: Path) -> list[str]:
    port = _free_port()
    if launcher == "accelerate":
        profile = ClusterProfile(kind="slurm", partition="test", gpus_per_node=PROCESSES, train_nodes=1)
        return accelerate_command(cfg, profile, str(run.root), "0", "127.0.0.1", port)
    entry = tmp_path / "deepspeed_entry.py"
    entry.write_text(ENTRY)
    return [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(PROCESSES),
            "--master_addr", "127.0.0.1", "--master_port", str(port), str(entry), str(run.root)]


@pytest.mark.parametrize("stage, launcher", [(2, "accelerate"), (3, "deepspeed")], ids=["zero2", "zero3"])
def test_dpo_trains_under_deepspeed_zero_on_cpu(stage, launcher, toy_pairs_run, tmp_path):
    from transformers import AutoModelForCausalLM

    run = RunDir(tmp_path / "run")
    shutil.copytree(toy_pairs_run, run.root)
    ds_config = REPO / "configs" / "deepspeed" / f"zero{stage}.json"
    overrides = TOY_PAIRS + TRAIN_OVERRIDES + [f"train.deepspeed={ds_config}"]
    cfg = load_config(REPO / "configs" / "tiny.yaml", overrides)
    save_config(cfg, run.config_path)
    assert Path(load_run_config(run).train.deepspeed).is_file()

    output = tmp_path / "launch.log"
    with open(output, "w") as log:
        result = subprocess.run(_command(launcher, cfg, run, tmp_path), cwd=REPO, env=_environment(), stdout=log,
                                stderr=subprocess.STDOUT, timeout=TIMEOUT_S)
    tail = "\n".join(output.read_text(errors="replace").splitlines()[-60:])
    assert result.returncode == 0, f"ZeRO-{stage} training failed:\n{tail}"

    summary = read_json(run.stage_dir("train") / "summary.json")
    assert summary["global_step"] == STEPS and summary["world_size"] == PROCESSES, summary
    assert summary["gradient_accumulation_steps"] == 1  # 16 = 8 per process x 1 x 2 processes
    rows = read_jsonl(train_log_path(run))
    assert [row["step"] for row in rows] == list(range(1, STEPS + 1)), rows
    assert rows[-1]["loss"] < rows[0]["loss"], rows

    trained = AutoModelForCausalLM.from_pretrained(trained_model_dir(run))
    base = AutoModelForCausalLM.from_pretrained(cfg.model.path)
    trained_weights, base_weights = trained.state_dict(), base.state_dict()
    assert trained_weights.keys() == base_weights.keys()
    for name, tensor in trained_weights.items():  # whole tensors (ZeRO-3 gathers them), nothing lost
        assert tensor.shape == base_weights[name].shape and torch.isfinite(tensor).all(), name
    assert any(not torch.equal(trained_weights[name], base_weights[name]) for name in base_weights), \
        "the saved model is the untrained one"
