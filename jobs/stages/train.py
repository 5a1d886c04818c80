"""Stage: DPO (or SFT, for the SFT baseline) with TRL; the trained model is saved as an ordinary
HF checkpoint. Checkpoints every `train.save_steps`; a restarted job resumes from the latest one
with its optimizer, scheduler and data position, and its log continues from that step. Once the
model is saved the checkpoints are deleted, unless `train.keep_checkpoints`."""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from jobs.stages.pairs import pairs_dir
from retmask.config import ExperimentConfig
from retmask.io import atomic_directory, read_json, read_jsonl, write_json, write_jsonl
from retmask.rundir import RunDir

if TYPE_CHECKING:
    from retmask.cards import Evaluation


def trained_model_dir(run: RunDir):
    return run.stage_dir("train") / "model"


def train_log_path(run: RunDir):
    return run.stage_dir("train") / "train_log.jsonl"


def trainer_dir(run: RunDir):
    return run.stage_dir("train") / "trainer"


def write_model_card(cfg: ExperimentConfig, run: RunDir, evaluation: Evaluation | None = None) -> None:
    """The trained model's card, from the run's records; `evaluation` is None here and filled in
    when the report stage rewrites the card."""
    from jobs.stages.pairs import masked_heads
    from retmask.cards import model_card, write_card

    card = model_card(cfg, masked_heads(cfg, run), read_json(pairs_dir(run) / "statistics.json"),
                      read_json(run.stage_dir("train") / "summary.json"), evaluation)
    write_card(trained_model_dir(run), card)


def _log_up_to(path, step: int | None) -> None:
    """Keep the log rows a resumed run will not repeat (none when starting afresh)."""
    if not path.is_file():
        return
    rows = [row for row in read_jsonl(path) if step is not None and row["step"] <= step]
    write_jsonl(path, rows)


def check_inputs(cfg: ExperimentConfig) -> None:
    """Before any job: the installed TRL (and liger-kernel) runs what the train section asks of it."""
    t = cfg.train
    if t.precompute_ref_log_probs or t.regime == "trl-0.24" or t.use_liger_kernel:
        from importlib.metadata import PackageNotFoundError, version

        import trl

        from retmask.training import check_trl_support

        try:
            liger = version("liger-kernel")
        except PackageNotFoundError:
            liger = None
        check_trl_support(t, trl.__version__, liger)


def deepspeed_process_group() -> None:
    """DeepSpeed's process group, before the trainer builds the models. A process no launcher
    started (`retmask run`, a study on this machine) is a world of one, said in the environment:
    DeepSpeed would otherwise look for MPI to find its world. On CPU nothing else starts DeepSpeed's
    communication layer, and ZeRO-3's zero.Init (the reference model) would see no group."""
    import socket

    import torch

    if "RANK" not in os.environ:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    if not torch.cuda.is_available():
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    import datasets

    from retmask.generation import load_model
    from retmask.strategies import get_strategy
    from retmask.train_progress import RunProgressCallback
    from retmask.training import check_truncation, drop_checkpoints, latest_checkpoint, truncation_report

    sft = get_strategy(cfg.strategy).trainer == "sft"
    if cfg.train.deepspeed:
        deepspeed_process_group()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    # Master weights in float32 whatever model.dtype says: AdamW steps of 5e-7 vanish in bf16
    # weights. bf16 is the compute dtype (autocast via train.bf16, or DeepSpeed's bf16 mode).
    model, tokenizer = load_model(cfg.model.path, "float32", for_training=True)
    tokenizer.padding_side = "right"
    dataset = datasets.load_from_disk(str(pairs_dir(run) / "dataset"))
    if sft:
        from retmask.sft import build_sft_trainer as build
        from retmask.sft import conversation_lengths as lengths
    else:
        from retmask.dpo import build_dpo_trainer as build
        from retmask.dpo import pair_lengths as lengths
    paper_regime = cfg.train.regime == "trl-0.24"
    if paper_regime and not sft:  # the lengths its trainer truncates: the prompt already cut
        from retmask.dpo import trl_0_24_lengths

        counted = trl_0_24_lengths(dataset, tokenizer, cfg.train.max_prompt_length)
    else:
        counted = lengths(dataset, tokenizer)
    report = {**truncation_report(counted, cfg.train.max_length), "regime": cfg.train.regime}
    write_json(run.stage_dir("train") / "truncation.json", report)
    if not paper_regime:  # the paper's regime truncated whatever it truncated: reported, not refused
        check_truncation(report, cfg.train.max_truncated_share)

    checkpoint = latest_checkpoint(trainer_dir(run))
    resumed_at = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] if checkpoint else None
    _log_up_to(train_log_path(run), resumed_at)
    trainer = build(model, tokenizer, dataset, cfg.train, trainer_dir(run), train_log_path(run), world_size)
    trainer.add_callback(RunProgressCallback(lambda total, done: run.progress_reporter("train", shard, "steps",
                                                                                       total, done)))
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    # Every rank takes part in saving (ZeRO-3 gathers the weights); the main one writes the files.
    staging = run.stage_dir("train") / ".model.saving"
    trainer.save_model(str(staging))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(staging))
        with atomic_directory(trained_model_dir(run)) as tmp:
            tmp.rmdir()
            os.replace(staging, tmp)
        write_json(run.stage_dir("train") / "summary.json", {
            "trainer": "sft" if sft else "dpo", "global_step": trainer.state.global_step,
            "train_loss": result.training_loss, "examples": len(dataset), "resumed_from_step": resumed_at,
            "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps, "world_size": world_size,
            "train_seconds": round(result.metrics.get("train_runtime", 0.0), 3)})  # the loop alone
        write_model_card(cfg, run)
        if not cfg.train.keep_checkpoints:
            drop_checkpoints(trainer_dir(run))
