"""What DPO and SFT training share: batch arithmetic, the truncation check, the jsonl log, the
trackers and checkpoint discovery."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from transformers import TrainerCallback

from retmask.errors import UserError
from retmask.tracking import attach_run_config, tensorboard_folder, training_arguments

LOGGED_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
               "learning_rate", "epoch", "grad_norm")


class TrainingError(UserError):
    pass


def gradient_accumulation(global_batch: int, per_device_batch: int, world_size: int) -> int:
    """Steps to accumulate so that per-device batch x accumulation x GPUs = the global batch."""
    per_step = per_device_batch * world_size
    if global_batch % per_step:
        raise TrainingError(f"global batch {global_batch} is not a multiple of per-device batch {per_device_batch} "
                            f"x {world_size} processes (one a GPU) = {per_step}; change train.global_batch_size, "
                            "train.per_device_batch_size or the number of GPUs (processes)")
    return global_batch // per_step


def truncation_report(lengths: list[tuple[int, int]], max_length: int) -> dict:
    """How many examples (prompt+chosen, prompt+rejected token counts) exceed max_length."""
    over = [i for i, (chosen, rejected) in enumerate(lengths) if max(chosen, rejected) > max_length]
    longest = max((max(pair) for pair in lengths), default=0)
    return {"max_length": max_length, "examples": len(lengths), "truncated": len(over),
            "share": round(len(over) / len(lengths), 4) if lengths else 0.0, "longest": longest}


def check_truncation(report: dict, max_share: float) -> None:
    if report["share"] > max_share:
        raise TrainingError(f"{report['truncated']} of {report['examples']} examples ({report['share']:.1%}) are "
                            f"longer than train.max_length={report['max_length']} (longest {report['longest']} "
                            f"tokens) and would be truncated; raise train.max_length or "
                            f"train.max_truncated_share (now {max_share})")


# TRL features and the versions that run them as configured: reference log-probs precomputed under
# ZeRO-2/3 crashed before 1.9 (TRL PR 6403); the keep-end truncation of regime trl-0.24 is
# deprecated in 1.x and announced for removal in 2.0.
PRECOMPUTE_UNDER_ZERO_SINCE = "1.9"
KEEP_END_UNTIL = "2.0"
# TRL 1.x deprecates use_liger_kernel and announces its removal in 2.0; it applies Liger's layer
# kernels only (not the fused cross-entropy, which its DPO replaces), which run under every ZeRO stage.
LIGER_UNTIL = "2.0"


def deepspeed_stage(config_path: str) -> int:
    """The ZeRO stage of a DeepSpeed config file (0 without one)."""
    if not config_path:
        return 0
    return int(json.loads(Path(config_path).read_text()).get("zero_optimization", {}).get("stage", 0))


def check_trl_support(train, trl_version: str, liger_version: str | None = None) -> None:
    """Refuse, before any job, a train section the installed TRL (and liger-kernel, when asked for:
    `liger_version` None = not installed) cannot run."""
    from packaging.version import Version
    from trl.import_utils import LIGER_KERNEL_MIN_VERSION

    stage = deepspeed_stage(train.deepspeed)
    if train.precompute_ref_log_probs and stage >= 2 and Version(trl_version) < Version(PRECOMPUTE_UNDER_ZERO_SINCE):
        raise TrainingError(f"train.precompute_ref_log_probs under ZeRO-{stage} ({train.deepspeed}) needs TRL >= "
                            f"{PRECOMPUTE_UNDER_ZERO_SINCE} (it crashes before, TRL PR 6403); TRL {trl_version} is "
                            f"installed: upgrade TRL, or set train.precompute_ref_log_probs: false")
    if train.regime == "trl-0.24" and Version(trl_version) >= Version(KEEP_END_UNTIL):
        raise TrainingError(f"train.regime trl-0.24 truncates keeping the end, which TRL {trl_version} no longer "
                            f"has (removed in {KEEP_END_UNTIL}); install TRL < {KEEP_END_UNTIL}, or set train.regime: full")
    if train.use_liger_kernel:
        if Version(trl_version) >= Version(LIGER_UNTIL):
            raise TrainingError(f"train.use_liger_kernel: TRL {trl_version} no longer takes it (removed in "
                                f"{LIGER_UNTIL}); install TRL < {LIGER_UNTIL}, or set train.use_liger_kernel: false")
        if liger_version is None or Version(liger_version) < Version(LIGER_KERNEL_MIN_VERSION):
            found = "is not installed" if liger_version is None else f"{liger_version} is installed"
            raise TrainingError(f"train.use_liger_kernel needs liger-kernel >= {LIGER_KERNEL_MIN_VERSION}; it {found}: "
                                f"pip install 'liger-kernel>={LIGER_KERNEL_MIN_VERSION}' where the jobs run, or set "
                                "train.use_liger_kernel: false")


def check_liger_device(train, use_cpu: bool) -> None:
    if train.use_liger_kernel and use_cpu:
        raise TrainingError("train.use_liger_kernel: Liger's kernels are Triton kernels for CUDA GPUs and this "
                            "process has none; set train.use_liger_kernel: false to train on CPU")


class JsonlLogCallback(TrainerCallback):
    """Appends every training log entry as one json line, as it happens (a resumed run goes on
    appending, so the log shows the steps continue)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        row = {"step": state.global_step, **{k: logs[k] for k in LOGGED_KEYS if k in logs}}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete `checkpoint-N` directory, if any."""
    checkpoints = [p for p in Path(output_dir).glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(checkpoints, key=lambda p: int(p.name.split("-")[1]), default=None)


def drop_checkpoints(output_dir: Path) -> None:
    """Delete the trainer's checkpoints once the trained model is saved: they serve only to resume,
    and each holds the optimizer state (~100 GB for an 8B model). Each is renamed before it is
    deleted, so a kill mid-way leaves no half checkpoint for a later resume to load."""
    output_dir = Path(output_dir)
    for checkpoint in output_dir.glob("checkpoint-*"):
        os.replace(checkpoint, output_dir / f".deleting-{checkpoint.name}")
    for doomed in output_dir.glob(".deleting-checkpoint-*"):  # this call's, or those a kill left
        shutil.rmtree(doomed)


def common_arguments(train, output_dir: Path, world_size: int, use_cpu: bool) -> dict:
    """TrainingArguments both trainers take, from the experiment's TrainConfig (paper defaults)."""
    check_liger_device(train, use_cpu)
    return dict(
        output_dir=str(output_dir),
        learning_rate=train.learning_rate,
        lr_scheduler_type="cosine_with_min_lr",
        # The floor as a share of the peak rate: `min_lr` makes transformers read optimizer.defaults,
        # which DeepSpeed's ZeRO optimizer wrapper lacks.
        lr_scheduler_kwargs={"min_lr_rate": train.min_learning_rate / train.learning_rate},
        warmup_steps=train.warmup_ratio,  # a value below 1 is a share of the total steps
        weight_decay=train.weight_decay,
        adam_beta1=train.adam_beta1,
        adam_beta2=train.adam_beta2,
        per_device_train_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=gradient_accumulation(train.global_batch_size, train.per_device_batch_size,
                                                          world_size),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        max_length=train.max_length,  # explicit: TRL's default of 1024 truncates long responses silently
        bf16=train.bf16 and not use_cpu,
        gradient_checkpointing=train.gradient_checkpointing,
        logging_steps=train.logging_steps,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit or None,
        **training_arguments(train.report_to, output_dir),  # report_to and run_name
        seed=train.seed,
        data_seed=train.seed,
        use_cpu=use_cpu,
        use_liger_kernel=train.use_liger_kernel,
        disable_tqdm=True,
        deepspeed=train.deepspeed or None,
    )


def build_trainer(trainer_class, args, log_path: Path, **trainer_arguments):
    """A TRL trainer with the jsonl log; on a tracked run its trackers get the run's config, and
    TensorBoard writes into the run's tracking folder."""
    with tensorboard_folder(args):
        trainer = trainer_class(args=args, callbacks=[JsonlLogCallback(log_path)], **trainer_arguments)
    attach_run_config(trainer)
    return trainer
