"""The HF generation backend: batched, left-padded `generate` over chat prompts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS) or "length"


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model(path: str | Path, dtype: str = "float32", attn_implementation: str = "sdpa",
               for_training: bool = False):
    """Load a local HF causal LM and its tokenizer, set up for batched generation. For inference the
    model goes onto the GPUs the job was given, spread over them when there are several; for
    training it stays where it is loaded, since the trainer (accelerate, DeepSpeed) places it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a HF checkpoint directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"  # batched decoding continues from the right edge
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    placement = {"device_map": "auto"} if torch.cuda.is_available() and not for_training else {}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], attn_implementation=attn_implementation,
                                                 **placement)
    if not for_training:
        model.eval()
    return model, tokenizer


def render_prompts(tokenizer, prompts: list[list[dict]], chat_template_kwargs: dict | None = None) -> list[list[int]]:
    """Token ids of each chat prompt, rendered by the tokenizer's own chat template (with its
    options, e.g. Qwen3's enable_thinking)."""
    texts = [tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                           **(chat_template_kwargs or {})) for messages in prompts]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def chat_token_count(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> int:
    """Tokens of a conversation as its chat template renders it."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids, mask


@torch.no_grad()
def generate_ids(
    model,
    tokenizer,
    rows: list[list[int]],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    seed: int | None = None,
) -> list[Generation]:
    """Continue each row of token ids, `batch_size` rows at a time (left-padded)."""
    if seed is not None:
        torch.manual_seed(seed)
    eos_ids = stop_ids(model, tokenizer)
    # Every field explicit: the model's generation config would otherwise supply its own (top_k 50).
    sampling = ({"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k, "min_p": min_p}
                if do_sample else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
    sampling["repetition_penalty"] = repetition_penalty
    results: list[Generation] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        ids, mask = _left_pad(batch, tokenizer.pad_token_id)
        output = model.generate(
            input_ids=ids.to(model.device),
            attention_mask=mask.to(model.device),
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_ids,
            pad_token_id=tokenizer.pad_token_id,
            **sampling,
        )
        for row, prompt in zip(output[:, ids.shape[1]:].tolist(), batch):
            stop = next((i for i, token in enumerate(row) if token in eos_ids), None)
            tokens = row if stop is None else row[:stop]
            results.append(Generation(
                text=tokenizer.decode(tokens, skip_special_tokens=True),
                prompt_tokens=len(prompt),
                completion_tokens=len(tokens),
                finish_reason="length" if stop is None else "stop",
            ))
    return results


def generate(model, tokenizer, prompts: list[list[dict]], chat_template_kwargs: dict | None = None,
             **kwargs) -> list[Generation]:
    """Generate one response per chat prompt (see `generate_ids` for the options)."""
    return generate_ids(model, tokenizer, render_prompts(tokenizer, prompts, chat_template_kwargs), **kwargs)


def greedy_generate(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, batch_size: int = 16) -> list[str]:
    return [g.text for g in generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)]


def stop_ids(model, tokenizer) -> list[int]:
    """EOS and end-of-turn ids: those of the generation config, the model config and the tokenizer."""
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None)
        if value is not None:
            ids.update(value if isinstance(value, list) else [value])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)
