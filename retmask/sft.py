"""SFT on the chosen responses alone (the paper's SFT baseline), with TRL's SFTTrainer."""
from __future__ import annotations

from pathlib import Path

from retmask.config import TrainConfig
from retmask.training import JsonlLogCallback, common_arguments


def conversation_lengths(dataset, tokenizer) -> list[tuple[int, int]]:
    lengths = []
    for row in dataset:
        ids = tokenizer.apply_chat_template(row["messages"], tokenize=True)
        n = len(ids["input_ids"] if isinstance(ids, dict) else ids)
        lengths.append((n, n))
    return lengths


def build_sft_trainer(model, tokenizer, train_dataset, train: TrainConfig, output_dir: Path, log_path: Path,
                      world_size: int = 1):
    import torch
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(assistant_only_loss=False,
                     **common_arguments(train, output_dir, world_size, use_cpu=not torch.cuda.is_available()))
    return SFTTrainer(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer,
                      callbacks=[JsonlLogCallback(log_path)])
