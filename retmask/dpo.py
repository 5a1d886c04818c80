"""DPO with TRL: the trainer built from the experiment's TrainConfig.

Reference = the original model (TRL builds it from the policy when none is given). The
learning-rate schedule is the paper's: linear warm-up, then cosine down to a floor.
"""
from __future__ import annotations

from pathlib import Path

from retmask.config import TrainConfig
from retmask.training import build_trainer, common_arguments


def pair_lengths(dataset, tokenizer) -> list[tuple[int, int]]:
    """Token counts of prompt+chosen and prompt+rejected, rendered by the chat template."""
    from retmask.generation import chat_token_count

    return [(chat_token_count(tokenizer, row["prompt"] + row["chosen"]),
             chat_token_count(tokenizer, row["prompt"] + row["rejected"])) for row in dataset]


def build_dpo_trainer(model, tokenizer, train_dataset, train: TrainConfig, output_dir: Path, log_path: Path,
                      world_size: int = 1):
    import torch
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(beta=train.beta, precompute_ref_log_probs=train.precompute_ref_log_probs,
                     **common_arguments(train, output_dir, world_size, use_cpu=not torch.cuda.is_available()))
    return build_trainer(DPOTrainer, args, log_path, model=model, ref_model=None, train_dataset=train_dataset,
                         processing_class=tokenizer)
