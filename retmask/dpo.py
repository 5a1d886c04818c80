"""DPO with TRL: the trainer built from the experiment's TrainConfig.

Reference model = the original model (TRL builds it from the policy when none is given). The
learning-rate schedule is the paper's: linear warm-up, then cosine down to a floor.
"""
from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

from retmask.config import TrainConfig

LOGGED_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
               "learning_rate", "epoch")


class JsonlLogCallback(TrainerCallback):
    """Appends every training log entry as one json line, as it happens."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        row = {"step": state.global_step, **{k: logs[k] for k in LOGGED_KEYS if k in logs}}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")


def dpo_config(train: TrainConfig, output_dir: Path, use_cpu: bool):
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(output_dir),
        beta=train.beta,
        learning_rate=train.learning_rate,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr": train.min_learning_rate},
        warmup_steps=train.warmup_ratio,  # a value below 1 is a share of the total steps
        weight_decay=train.weight_decay,
        adam_beta1=train.adam_beta1,
        adam_beta2=train.adam_beta2,
        per_device_train_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        max_length=train.max_length,  # explicit: TRL's default of 1024 truncates long responses silently
        bf16=train.bf16 and not use_cpu,
        gradient_checkpointing=train.gradient_checkpointing,
        logging_steps=train.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=train.seed,
        use_cpu=use_cpu,
        disable_tqdm=True,
    )


def build_dpo_trainer(model, tokenizer, train_dataset, train: TrainConfig, output_dir: Path, log_path: Path):
    import torch
    from trl import DPOTrainer

    args = dpo_config(train, output_dir, use_cpu=not torch.cuda.is_available())
    return DPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        callbacks=[JsonlLogCallback(log_path)],
    )
