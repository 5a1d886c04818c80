"""SFT on the chosen responses alone (the paper's SFT baseline), with TRL's SFTTrainer."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from retmask.config import TrainConfig
from retmask.training import build_trainer, common_arguments


def conversation_lengths(dataset, tokenizer) -> list[tuple[int, int]]:
    from retmask.generation import chat_token_count

    lengths = []
    for row in dataset:
        n = chat_token_count(tokenizer, row["prompt"] + row["completion"])
        lengths.append((n, n))
    return lengths


def build_sft_trainer(model, tokenizer, train_dataset, train: TrainConfig, output_dir: Path, log_path: Path,
                      world_size: int = 1):
    import torch
    from trl import SFTConfig, SFTTrainer

    # SFT's own peak rate, cosine down to the same share of it as DPO's floor
    sft = replace(train, learning_rate=train.sft_learning_rate,
                  min_learning_rate=train.sft_learning_rate * train.min_learning_rate / train.learning_rate)
    # prompt/completion rows: the loss covers the completion only (the chosen response)
    args = SFTConfig(completion_only_loss=True,
                     **common_arguments(sft, output_dir, world_size, use_cpu=not torch.cuda.is_available()))
    return build_trainer(SFTTrainer, args, log_path, model=model, train_dataset=train_dataset,
                         processing_class=tokenizer)
