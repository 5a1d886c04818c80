"""The training stage keeps float32 master weights for a model stored and run in bf16: the paper's
learning rate (5e-7) is far below bf16's resolution for weights of ordinary size, so AdamW on
bf16 weights would leave the model as it was."""
import torch
from safetensors.torch import load_file

from jobs.local import LocalPipeline
from jobs.runner import load_run_config
from jobs.stages.train import run as train
from jobs.stages.train import trained_model_dir
from retmask.config import load_config, save_config
from retmask.rundir import RunDir
from tests.conftest import REPO

PAPER_LEARNING_RATE = 5e-7


def _bf16_copy(source, target):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def test_a_bf16_model_trains_at_the_papers_rate_with_float32_master_weights(tmp_path, toy_model_dir):
    model_dir = _bf16_copy(toy_model_dir, tmp_path / "bf16-model")
    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        f"model.path={model_dir}", "model.dtype=bfloat16", "synthesis.max_prompts=16",
        f"train.learning_rate={PAPER_LEARNING_RATE}", f"train.min_learning_rate={PAPER_LEARNING_RATE / 10}",
        "train.warmup_ratio=0", "train.max_steps=2", "train.per_device_batch_size=8", "train.global_batch_size=8"])
    run = RunDir(tmp_path / "run")
    save_config(cfg, run.config_path)
    LocalPipeline(load_run_config(run), run, log=lambda line: None, until="pairs").execute(max_parallel=2)

    train(load_run_config(run), run, 0)

    base = load_file(model_dir / "model.safetensors")
    trained = load_file(trained_model_dir(run) / "model.safetensors")
    name = "model.layers.0.self_attn.o_proj.weight"
    assert trained[name].dtype == torch.float32
    moved = (trained[name] != base[name].float()).float().mean().item()
    # Two Adam steps move nearly every weight by about the learning rate: visible in float32,
    # lost below half a bf16 ulp.
    assert moved > 0.9, f"only {moved:.0%} of {name} moved"
    kept_in_bf16 = (trained[name].to(torch.bfloat16) == base[name]).float().mean().item()
    assert kept_in_bf16 > 0.5, f"{kept_in_bf16:.0%}: steps of 5e-7 should mostly vanish in bf16 weights"
