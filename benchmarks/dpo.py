"""Our train stage against a bare TRL DPOTrainer, as ratios measured in one run: the same model,
pairs, batch and steps, each side in its own process (peak memory is per process).

Prints, for each side, the training loop's seconds per step, the whole process's seconds and its
peak memory (GPU: torch.cuda.max_memory_allocated; CPU: the process's peak resident set), and
bare / ours for time (the goal: >= 0.95) and ours / bare for memory (<= 1.05).

    python benchmarks/dpo.py                          # the toy: a run to its pairs is made first
    python benchmarks/dpo.py --run runs/my-run --steps 20   # a run of yours with its pairs, on a GPU node
    python benchmarks/dpo.py --run runs/my-run --precompute  # both sides with precompute_ref_log_probs
    python benchmarks/dpo.py --run runs/my-run --liger       # both sides with use_liger_kernel (GPU)
    python benchmarks/dpo.py --run runs/my-run --options     # our stage with each memory option / without

--options compares our stage with itself: plain, with precompute_ref_log_probs, and (on a GPU with
liger-kernel installed) with use_liger_kernel, printing time per step and peak memory as ratios to plain.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PEAK = """
def peak_bytes():
    import resource, torch
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
"""

OURS = PEAK + """
import json, sys, time
from jobs.runner import load_run_config
from jobs.stages.train import run as train
from retmask.rundir import RunDir
started = time.perf_counter()
run = RunDir(sys.argv[1])
train(load_run_config(run), run, 0)
summary = json.loads((run.stage_dir("train") / "summary.json").read_text())
print(json.dumps({"loop_s": summary["train_seconds"], "steps": summary["global_step"],
                  "process_s": time.perf_counter() - started, "peak": peak_bytes()}))
"""

BARE = PEAK + """
import json, sys, time
started = time.perf_counter()
import datasets, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer
model_path, dataset_path, out, settings = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
tokenizer = AutoTokenizer.from_pretrained(model_path)
if tokenizer.pad_token is None:
    tokenizer.pad_token = tokenizer.eos_token
model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
cpu = not torch.cuda.is_available()
args = DPOConfig(output_dir=out, report_to="none", save_strategy="no", use_cpu=cpu, bf16=settings.pop("bf16") and not cpu,
                 **settings)
trainer = DPOTrainer(model=model, args=args, train_dataset=datasets.load_from_disk(dataset_path),
                     processing_class=tokenizer)
result = trainer.train()
print(json.dumps({"loop_s": result.metrics["train_runtime"], "steps": trainer.state.global_step,
                  "process_s": time.perf_counter() - started, "peak": peak_bytes()}))
"""


def toy_run(root: Path) -> Path:
    """configs/tiny.yaml run locally up to its pairs."""
    from jobs.local import LocalPipeline
    from jobs.runner import record_config
    from retmask.config import load_config

    cfg = load_config(REPO / "configs" / "tiny.yaml", ["synthesis.max_prompts=64"])
    cfg.run_dir = str(root / "toy")
    run = record_config(cfg)
    LocalPipeline(cfg, run, log=lambda line: None, until="pairs").execute(max_parallel=2)
    return run.root


def measure(code: str, *arguments: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *arguments], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    if result.returncode != 0:
        raise SystemExit(result.stderr[-4000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a run directory whose pairs stage has finished (default: the toy's, made here)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precompute", action="store_true", help="precompute_ref_log_probs on both sides")
    parser.add_argument("--liger", action="store_true", help="use_liger_kernel on both sides (CUDA GPUs)")
    parser.add_argument("--options", action="store_true",
                        help="our stage plain against itself with each memory option, instead of against bare TRL")
    args = parser.parse_args()

    from jobs.runner import load_run_config
    from retmask.rundir import RunDir
    from retmask.training import gradient_accumulation

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = RunDir(Path(args.run) if args.run else toy_run(work))
        cfg = load_run_config(source)
        cfg.train.max_steps, cfg.train.save_steps = args.steps, args.steps + 1  # no checkpoint on either side
        cfg.train.precompute_ref_log_probs, cfg.train.use_liger_kernel = args.precompute, args.liger
        cfg.train.max_truncated_share = 1.0  # measured, not refused
        if args.options:
            return compare_options(cfg, source, work)
        ours_run = our_run(cfg, source, work / "ours")
        t = cfg.train
        settings = {"beta": t.beta, "learning_rate": t.learning_rate, "per_device_train_batch_size": t.per_device_batch_size,
                    "gradient_accumulation_steps": gradient_accumulation(t.global_batch_size, t.per_device_batch_size, 1),
                    "max_steps": args.steps, "max_length": t.max_length, "bf16": t.bf16,
                    "gradient_checkpointing": t.gradient_checkpointing, "precompute_ref_log_probs": args.precompute,
                    "use_liger_kernel": args.liger}
        bare = measure(BARE, cfg.model.path, str(source.stage_dir("pairs") / "dataset"), str(work / "bare"),
                       json.dumps(settings))
        ours = measure(OURS, str(ours_run.root))
    print(f"{args.steps} DPO steps of {t.global_batch_size} pairs (per-device batch {t.per_device_batch_size}), "
          f"{cfg.model.path}" + (", reference log-probs precomputed" if args.precompute else "")
          + (", Liger kernels" if args.liger else ""))
    for name, result in (("bare TRL DPOTrainer", bare), ("our train stage", ours)):
        print(f"  {name:<20} loop {result['loop_s'] / result['steps']:.3f} s/step, process {result['process_s']:.1f} s, "
              f"peak memory {result['peak'] / 2**20:,.0f} MiB")
    print(f"time per step, bare / ours:  {bare['loop_s'] / bare['steps'] / (ours['loop_s'] / ours['steps']):.3f}")
    print(f"whole process, bare / ours:  {bare['process_s'] / ours['process_s']:.3f}")
    print(f"peak memory, ours / bare:    {ours['peak'] / bare['peak']:.3f}")


def our_run(cfg, source, root: Path):
    """A run directory holding `source`'s pairs (and heads) under `cfg`, ready for its train stage."""
    from retmask.config import save_config
    from retmask.rundir import RunDir

    run = RunDir(root)
    for stage in ("pairs", "select_heads"):
        if source.stage_dir(stage).is_dir():
            shutil.copytree(source.stage_dir(stage), run.stage_dir(stage))
    save_config(cfg, run.config_path)
    return run


def compare_options(cfg, source, work: Path) -> None:
    import dataclasses
    import importlib.util

    import torch

    options = {"plain": {}, "precompute_ref_log_probs": {"precompute_ref_log_probs": True}}
    if torch.cuda.is_available() and importlib.util.find_spec("liger_kernel"):
        options["use_liger_kernel"] = {"use_liger_kernel": True}
    else:
        print("use_liger_kernel: not measured (it needs a CUDA GPU and liger-kernel installed)")
    results = {}
    for name, changes in options.items():
        plain_train = {"precompute_ref_log_probs": False, "use_liger_kernel": False}
        variant = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **{**plain_train, **changes}))
        results[name] = measure(OURS, str(our_run(variant, source, work / name).root))
    plain = results["plain"]
    print(f"our train stage, {cfg.train.max_steps} steps of {cfg.train.global_batch_size} pairs, {cfg.model.path}")
    for name, result in results.items():
        step = result["loop_s"] / result["steps"]
        print(f"  {name:<26} {step:.3f} s/step, peak memory {result['peak'] / 2**20:,.0f} MiB;  time per step "
              f"plain / this {plain['loop_s'] / plain['steps'] / step:.3f}, memory this / plain "
              f"{result['peak'] / plain['peak']:.3f}")


if __name__ == "__main__":
    main()
