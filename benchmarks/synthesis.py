"""Synthesis costs, as ratios measured in one run:

1. bytes a masked checkpoint adds / bytes of the model, for a Llama-shaped model (paper-like
   mask: 40 heads spread over the layers, and the worst case: a head in every layer);
2. HF backend throughput, batched / one prompt at a time, on the toy model.

    python benchmarks/synthesis.py
"""
from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def masked_bytes_ratio() -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from retmask.masking import write_masked_checkpoint

    # Llama-3-8B proportions at a fraction of the width: GQA 4:1, MLP 3.5x, untied embeddings.
    config = LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1792, num_hidden_layers=16,
                         num_attention_heads=16, num_key_value_heads=4, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model.save_pretrained(model_dir)
        model_bytes = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
        rng = random.Random(0)
        all_heads = [(layer, head) for layer in range(16) for head in range(16)]
        cases = {"40 heads (paper's Llama mask size)": rng.sample(all_heads, 40),
                 "one head in every layer": [(layer, 0) for layer in range(16)]}
        print(f"masked checkpoint, Llama-shaped model of {model_bytes / 2**20:.0f} MiB")
        for name, heads in cases.items():
            out = Path(tmp) / name.replace(" ", "_")
            started = time.perf_counter()
            write_masked_checkpoint(model_dir, heads, out)
            seconds = time.perf_counter() - started
            added = sum(f.stat().st_size for f in out.iterdir() if not f.is_symlink())
            layers = len({layer for layer, _ in heads})
            print(f"  {name} ({layers} layers): adds {added / 2**20:.1f} MiB = {added / model_bytes:.1%} "
                  f"of the model, written in {seconds:.2f}s")


def batched_throughput() -> None:
    import torch

    from retmask.toy.recipe import ToyModelConfig
    from retmask.generation import generate, load_model
    from retmask.io import read_jsonl
    from retmask.toy.cache import ensure_toy_model

    path = ensure_toy_model(ToyModelConfig())
    model, tokenizer = load_model(path)
    prompts = [row["messages"] for row in read_jsonl(path / "retmask_toy" / "prompts.jsonl")[:64]]
    torch.set_num_threads(os.cpu_count() or 1)

    def rate(batch_size: int) -> float:
        started = time.perf_counter()
        out = generate(model, tokenizer, prompts, max_new_tokens=14, batch_size=batch_size, do_sample=True,
                       temperature=0.7, seed=0)
        tokens = sum(g.completion_tokens for g in out) + len(out)  # + the EOS each one ends with
        return tokens / (time.perf_counter() - started)

    rate(8)  # warm-up
    single, batched = rate(1), rate(32)
    print(f"HF backend on the toy model, {len(prompts)} prompts: one at a time {single:.0f} tok/s, "
          f"batch 32 {batched:.0f} tok/s, batched/single {batched / single:.1f}x")


if __name__ == "__main__":
    masked_bytes_ratio()
    batched_throughput()
