"""Train the toy model: a tiny Llama that learns to copy a needle, and so grows retrieval heads.

Deterministic under the recipe's seed. The checkpoint is an ordinary HF directory (config,
safetensors, tokenizer) plus `retmask_toy/` holding the NIAH needles, a haystack and chat
prompts of the same task, so the whole pipeline can run on it offline.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from retmask.toy.recipe import ToyModelConfig
from retmask.io import atomic_directory, write_json, write_jsonl
from retmask.progress import ProgressReporter, ShardProgress
from retmask.toy.task import CopyExample, haystack_text, make_example, niah_needles
from retmask.toy.vocab import build_tokenizer

log = logging.getLogger(__name__)

ASSETS_DIR = "retmask_toy"


def _example(rng: random.Random, recipe: ToyModelConfig) -> CopyExample:
    return make_example(rng, recipe.min_haystack, recipe.max_haystack, recipe.min_values, recipe.max_values)


def _training_batch(rng: random.Random, recipe: ToyModelConfig) -> list[CopyExample]:
    """Examples sharing one haystack length, so a batch carries almost no padding (training on
    2 CPU cores is compute-bound: padding is time)."""
    length = rng.randint(recipe.min_haystack, recipe.max_haystack)
    return [make_example(rng, length, length, recipe.min_values, recipe.max_values)
            for _ in range(recipe.batch_size)]


def _encode_batch(tokenizer, examples: list[CopyExample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and labels that score only the answer and EOS."""
    rows, label_rows = [], []
    for example in examples:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": example.user}], tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(example.answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt_ids + answer_ids)
        label_rows.append([-100] * len(prompt_ids) + answer_ids)
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, label_row) in enumerate(zip(rows, label_rows)):
        ids[i, : len(row)] = torch.tensor(row)
        labels[i, : len(row)] = torch.tensor(label_row)
        mask[i, : len(row)] = 1
    return ids, mask, labels


def _lr_factor(step: int, recipe: ToyModelConfig) -> float:
    if step < recipe.warmup_steps:
        return (step + 1) / recipe.warmup_steps
    # Hold the peak rate until the last `decay_fraction` of steps, then decay linearly: the copy
    # circuit forms late and abruptly, so an early decay slows it down.
    decay_start = int(recipe.steps * (1 - recipe.decay_fraction))
    if step < decay_start:
        return 1.0
    return max(0.0, (recipe.steps - step) / max(1, recipe.steps - decay_start))


@torch.no_grad()
def exact_match(model, tokenizer, examples: list[CopyExample], batch_size: int = 64) -> float:
    """Share of examples whose greedy answer equals the needle's values exactly."""
    from retmask.generation import greedy_generate

    prompts = [[{"role": "user", "content": example.user}] for example in examples]
    answers = greedy_generate(model, tokenizer, prompts, max_new_tokens=12, batch_size=batch_size)
    hits = sum(answer.strip() == example.answer for answer, example in zip(answers, examples))
    return hits / len(examples)


def build_model(recipe: ToyModelConfig, vocab_size: int, tokenizer) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        head_dim=recipe.head_dim,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def add_head_dropout(model: LlamaForCausalLM, rate: float, head_dim: int) -> list:
    """Drop each head's output with probability `rate` (per example and layer; survivors scaled by
    1 / (1 - rate)) at the input of o_proj, where heads are still apart. Returns the hook handles."""
    def hook(module, args):
        (hidden,) = args
        if not module.training:
            return None
        batch, seq, width = hidden.shape
        keep = (torch.rand(batch, 1, width // head_dim, 1) >= rate).to(hidden.dtype) / (1 - rate)
        return (hidden.view(batch, seq, -1, head_dim) * keep).view(batch, seq, width)

    return [layer.self_attn.o_proj.register_forward_pre_hook(hook) for layer in model.model.layers]


def log_progress(progress: ShardProgress) -> None:
    log.info("toy model %s", progress.line())


def train_toy_model(recipe: ToyModelConfig, out_dir: Path, on_progress: Callable[[ShardProgress], None] = log_progress,
                    every_s: float = 15.0) -> dict:
    """Train per `recipe` and save the checkpoint and its assets into `out_dir` atomically;
    `on_progress` hears how far training is (steps, rate, ETA, loss) every `every_s` seconds."""
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    tokenizer = build_tokenizer()
    model = build_model(recipe, len(tokenizer), tokenizer)
    hooks = add_head_dropout(model, recipe.head_dropout, recipe.head_dim) if recipe.head_dropout else []
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, recipe))

    held_out_rng = random.Random(recipe.seed + 1)
    held_out = [_example(held_out_rng, recipe) for _ in range(recipe.eval_examples)]
    history = []
    started = time.perf_counter()
    reporter = ProgressReporter(on_progress, "steps", recipe.steps, every_s=every_s)
    for step in range(recipe.steps):
        ids, mask, labels = _encode_batch(tokenizer, _training_batch(rng, recipe))
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == recipe.steps - 1:
            history.append({"step": step, "loss": loss.item(), "seconds": time.perf_counter() - started})
        reporter.set(step + 1, note=f"loss {loss.item():.3f}")
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"toy model training diverged at step {step} (loss {loss.item()})")

    model.eval()
    for handle in hooks:
        handle.remove()
    summary = {
        "recipe": recipe.to_dict(),
        "train_seconds": round(time.perf_counter() - started, 1),
        "held_out_exact_match": exact_match(model, tokenizer, held_out),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        assets = tmp / ASSETS_DIR
        _write_assets(assets, recipe)
        write_jsonl(assets / "training_log.jsonl", history)
        write_json(assets / "summary.json", summary)
    return summary


def _write_assets(assets: Path, recipe: ToyModelConfig) -> None:
    """NIAH needles, a haystack and chat prompts drawn from a seed apart from the training data's."""
    rng = random.Random(recipe.seed + 2)
    write_jsonl(assets / "needles.jsonl", niah_needles(rng, 8, recipe.min_values, recipe.max_values))
    (assets / "haystack.txt").write_text(haystack_text(rng, 4096) + "\n")
    prompts = []
    for index in range(recipe.prompts):
        example = _example(rng, recipe)
        prompts.append({"id": f"toy-{index:05d}", "messages": [{"role": "user", "content": example.user}],
                        "reference": example.answer})
    write_jsonl(assets / "prompts.jsonl", prompts)


def read_summary(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / ASSETS_DIR / "summary.json").read_text())
