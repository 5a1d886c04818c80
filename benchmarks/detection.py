"""Detection cost: time against plain greedy generation of the same instances, and peak memory
by context length against the naive `output_attentions=True` eager computation.

    python benchmarks/detection.py [--lengths 1024,2048,4096] [--device cuda]

Every figure is a ratio or a peak measured in this one run. Memory is each method's peak in a
fresh process (ru_maxrss on CPU, max_memory_allocated on CUDA).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def bpe_tokenizer():
    from tests.helpers.qwen_bpe import qwen_bpe_tokenizer

    return qwen_bpe_tokenizer()


def random_llama(vocab: int, attn: str, device: str):
    """A small Llama-shaped model with GQA; random weights are enough for cost figures."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=131072)
    config._attn_implementation = attn
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()


def instances(tokenizer, lengths: list[int], depths: int):
    from retmask.niah import DEFAULT_TEMPLATE, build_instances

    return build_instances(tokenizer, "builtin", "builtin", [lengths[0], lengths[-1], len(lengths)], depths,
                           DEFAULT_TEMPLATE)


def time_ratio(model, tokenizer, items, new_tokens: int) -> dict:
    """Detection vs `model.generate` (greedy, batch 1) over the same instances and steps."""
    import torch

    from retmask.retrieval import argmax_steps, count_copy_hits

    def detect():
        for inst in items:
            count_copy_hits(argmax_steps(model, inst.input_ids, new_tokens, stops=set()), inst.input_ids,
                            inst.needle_span)

    def plain():
        for inst in items:
            ids = torch.tensor([inst.input_ids], device=model.device)
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)

    timings = {}
    for name, fn in (("plain", plain), ("detect", detect), ("plain_again", plain), ("detect_again", detect)):
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.no_grad():
            fn()
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        timings[name] = time.perf_counter() - started
    detect_s = min(timings["detect"], timings["detect_again"])
    plain_s = min(timings["plain"], timings["plain_again"])
    return {"detect_s": round(detect_s, 3), "plain_s": round(plain_s, 3), "ratio": round(detect_s / plain_s, 3)}


def eager_cached_argmax_steps(model, input_ids: list[int], max_new_tokens: int, stops: set[int]):
    """The baseline measured against: Wu et al.'s way, materialized eager attention weights of every
    decode step over a cache (`output_attentions=True`)."""
    import torch

    with torch.no_grad():
        ids = torch.tensor([input_ids], device=model.device)
        cache = model(input_ids=ids[:, :-1], use_cache=True, logits_to_keep=1).past_key_values
        current = ids[:, -1:]
        for _ in range(max_new_tokens):
            output = model(input_ids=current, past_key_values=cache, use_cache=True, output_attentions=True)
            cache = output.past_key_values
            token = int(output.logits[0, -1].argmax())
            if token in stops:
                return
            yield token, torch.stack([attention[0, :, -1].argmax(dim=-1) for attention in output.attentions])
            current = torch.tensor([[token]], device=model.device)


def memory_probe(method: str, ids_file: str, device: str, new_tokens: int) -> None:
    """Run in a child process: load the model, then (unless `method` is "baseline") detect on the
    instance in `ids_file`; print the process's peak memory."""
    import torch

    from retmask.retrieval import argmax_steps

    spec = json.loads(Path(ids_file).read_text())
    model = random_llama(spec["vocab"], "eager" if method == "naive" else "sdpa", device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if method != "baseline":
        steps = argmax_steps if method == "fast" else eager_cached_argmax_steps
        with torch.no_grad():
            list(steps(model, spec["input_ids"], new_tokens, stops=set()))
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": round(peak, 1)}))


def peak_mib(method: str, ids_file: Path, device: str, new_tokens: int) -> float | str:
    result = subprocess.run([sys.executable, __file__, "--probe", method, str(ids_file), "--device", device,
                             "--new-tokens", str(new_tokens)], capture_output=True, text=True)
    if result.returncode != 0:
        return "failed (" + (result.stderr.strip().splitlines() or ["?"])[-1][:60] + ")"
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="1024,2048,4096")
    parser.add_argument("--memory-lengths", default="1024,4096,8192")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--probe", nargs=2, metavar=("METHOD", "IDS_FILE"))
    args = parser.parse_args()
    if args.probe:
        memory_probe(args.probe[0], args.probe[1], args.device, args.new_tokens)
        return

    tokenizer = bpe_tokenizer()
    lengths = [int(x) for x in args.lengths.split(",")]
    model = random_llama(len(tokenizer), "sdpa", args.device)
    print("detection time / plain greedy generation time (same instances, same steps)")
    for length in lengths:
        items = instances(tokenizer, [length], 3)
        print(f"  {length:>7} tokens: {time_ratio(model, tokenizer, items, args.new_tokens)}")

    print("peak memory (MiB) of detection itself (process peak minus the loaded model's), one instance")
    with tempfile.TemporaryDirectory() as tmp:
        for length in [int(x) for x in args.memory_lengths.split(",")]:
            ids_file = Path(tmp) / f"{length}.json"
            ids_file.write_text(json.dumps({"vocab": len(tokenizer),
                                            "input_ids": instances(tokenizer, [length], 1)[0].input_ids}))
            base = peak_mib("baseline", ids_file, args.device, args.new_tokens)
            fast = peak_mib("fast", ids_file, args.device, args.new_tokens)
            naive = peak_mib("naive", ids_file, args.device, args.new_tokens)
            if all(isinstance(v, float) for v in (base, fast, naive)):
                # below 1 MiB the fast path stays under the model-loading peak itself
                fast_own, naive_own = fast - base, naive - base
                ratio = f"{naive_own / fast_own:.0f}x" if fast_own >= 1 else f">{naive_own:.0f}x"
                print(f"  {length:>7} tokens: fast {max(fast_own, 0):.0f}  naive eager {naive_own:.0f}  "
                      f"naive/fast {ratio}")
            else:
                print(f"  {length:>7} tokens: baseline {base} fast {fast} naive {naive}")


if __name__ == "__main__":
    main()
