"""DPO with TRL: the trainer built from the experiment's TrainConfig.

Reference = the original model (TRL builds it from the policy when none is given). The
learning-rate schedule is the paper's: linear warm-up, then cosine down to a floor.

Regime "trl-0.24" trains on what the paper's trainer saw: TRL 0.24 rendered the prompt and each
response with the chat template as text, tokenized them apart without special tokens, appended EOS
to each response, kept the prompt's last max_prompt_length tokens, then each prompt + response's
last max_length tokens. The installed TRL tokenizes prompt and response together and has no
prompt length, so the rows are tokenized here as 0.24 did and its collator cuts the same ends.
"""
from __future__ import annotations

from itertools import takewhile
from pathlib import Path

from retmask.config import TrainConfig
from retmask.training import build_trainer, common_arguments


def pair_lengths(dataset, tokenizer) -> list[tuple[int, int]]:
    """Token counts of prompt+chosen and prompt+rejected, rendered by the chat template."""
    from retmask.generation import chat_token_count

    return [(chat_token_count(tokenizer, row["prompt"] + row["chosen"]),
             chat_token_count(tokenizer, row["prompt"] + row["rejected"])) for row in dataset]


def _common_prefix(a: str, b: str) -> str:
    return "".join(x for x, _ in takewhile(lambda pair: pair[0] == pair[1], zip(a, b)))


def tokenize_as_trl_0_24(row: dict, tokenizer, max_prompt_length: int) -> dict[str, list[int]]:
    """A conversational pair as TRL 0.24 tokenized it (data_utils.apply_chat_template, then
    DPOTrainer.tokenize_row), in the installed TRL's column names."""
    prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    responses = {}
    for side in ("chosen", "rejected"):  # in this order: the prompt narrows as 0.24's did
        full = tokenizer.apply_chat_template(row["prompt"] + row[side], tokenize=False)
        prompt = _common_prefix(prompt, full)
        responses[side] = full[len(prompt):]

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return {"prompt_ids": ids(prompt)[-max_prompt_length:],
            **{f"{side}_ids": ids(text) + [tokenizer.eos_token_id] for side, text in responses.items()}}


def trl_0_24_lengths(dataset, tokenizer, max_prompt_length: int) -> list[tuple[int, int]]:
    """Prompt + chosen and prompt + rejected tokens in regime trl-0.24, before max_length."""
    lengths = []
    for row in dataset:
        tokens = tokenize_as_trl_0_24(row, tokenizer, max_prompt_length)
        lengths.append((len(tokens["prompt_ids"]) + len(tokens["chosen_ids"]),
                        len(tokens["prompt_ids"]) + len(tokens["rejected_ids"])))
    return lengths


def build_dpo_trainer(model, tokenizer, train_dataset, train: TrainConfig, output_dir: Path, log_path: Path,
                      world_size: int = 1):
    import torch
    from trl import DPOConfig, DPOTrainer

    paper_regime = train.regime == "trl-0.24"
    args = DPOConfig(beta=train.beta, precompute_ref_log_probs=train.precompute_ref_log_probs,
                     **({"truncation_mode": "keep_end"} if paper_regime else {}),
                     **common_arguments(train, output_dir, world_size, use_cpu=not torch.cuda.is_available()))
    trainer_class = DPOTrainer
    if paper_regime:
        class Trl024DPOTrainer(DPOTrainer):
            def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
                return dataset.map(tokenize_as_trl_0_24, remove_columns=dataset.column_names,
                                   fn_kwargs={"tokenizer": processing_class,
                                              "max_prompt_length": train.max_prompt_length})

        trainer_class = Trl024DPOTrainer
    return build_trainer(trainer_class, args, log_path, model=model, ref_model=None, train_dataset=train_dataset,
                         processing_class=tokenizer)
