"""Synthesis against the bare engine, as ratios measured in one run on one engine:

1. our synthesis stage (the shard's prompts streamed through vLLM, rows written as they finish)
   against a bare `LLM.chat` over the same prompts with the same sampling and seeds: output
   tokens/s of each and ours / bare (the goal: >= 0.95);
2. the same prompts handed over a batch at a time (synthesis before it streamed) / bare;
3. bare with a seed per prompt / bare without seeds (the cost of reproducible, independent samples).

Responses must vary widely in length for (2) to show: by default a random model made here (head
dimension 64, the toy's word-level vocabulary, so an end of turn comes anywhere up to the cap).
It runs in an environment with vLLM (the tests' CPU build, or a GPU node):

    python benchmarks/synthesis_engine.py                                  # random model, CPU build
    python benchmarks/synthesis_engine.py --model /models/Llama-3.1-8B-Instruct --prompts 2048 \\
        --max-new-tokens 2048 --prompt-file /data/lmsys-chat-1m-synth.jsonl.gz   # one GPU: vLLM's ~6K tokens/s
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REPO = Path(__file__).resolve().parents[1]


def random_model(out: Path) -> Path:
    """A random Llama with heads of 64 dimensions on the toy's tokenizer and chat template."""
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    from retmask.toy.cache import ensure_toy_model
    from retmask.toy.recipe import ToyModelConfig

    tokenizer = AutoTokenizer.from_pretrained(ensure_toy_model(ToyModelConfig()))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    GenerationConfig(eos_token_id=tokenizer.eos_token_id).save_pretrained(out)
    return out


def write_prompts(path: Path, count: int, source: str | None) -> Path:
    """`count` prompts as a jsonl of {id, messages}: the first of `source` (any prompt set the
    toolkit reads), else the toy's prompts, repeated with their index to make them distinct."""
    from retmask.prompts import load_prompts
    from retmask.toy.cache import ensure_toy_model
    from retmask.toy.recipe import ToyModelConfig

    if source:
        prompts = [p.messages for p in load_prompts(source, limit=count).prompts]
    else:
        toy = ensure_toy_model(ToyModelConfig()) / "retmask_toy" / "prompts.jsonl"
        prompts = [json.loads(line)["messages"] for line in toy.read_text().splitlines()]
    rows = [{"id": f"p{i}", "messages": [{**prompts[i % len(prompts)][0],
                                          "content": f"{prompts[i % len(prompts)][0]['content']} {i}"}]}
            for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def output_tokens(outputs) -> int:
    return sum(len(output.outputs[0].token_ids) for output in outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a local checkpoint (default: a random model made here)")
    parser.add_argument("--prompt-file", help="prompts in any format the toolkit reads (default: the toy's)")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32, help="the batch of the batch-at-a-time run")
    parser.add_argument("--temperature", type=float, default=1.0)
    args = parser.parse_args()

    from jobs.stages.prompts import run as prepare_prompts
    from jobs.stages.synthesize import prompt_seeds, synthesize
    from retmask.backends import VLLMBackend
    from retmask.config import load_config, save_config
    from retmask.rows import RowFile
    from retmask.rundir import RunDir
    from retmask.synthesis_config import model_sampling_defaults

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or str(random_model(work / "model"))
        cfg = load_config(REPO / "configs" / "tiny.yaml", [
            f"model.path={model}", f"synthesis.prompts={write_prompts(work / 'prompts.jsonl', args.prompts, args.prompt_file)}",
            "synthesis.prompt_format=messages", "synthesis.backend=vllm", "synthesis.shards=1",
            f"synthesis.max_prompts={args.prompts}", f"synthesis.batch_size={args.batch_size}",
            f"synthesis.sampling.temperature={args.temperature}", "synthesis.sampling.top_p=1.0",
            f"synthesis.sampling.max_new_tokens={args.max_new_tokens}"])
        run = RunDir(work / "run")
        save_config(cfg, run.config_path)
        prepare_prompts(cfg, run, 0)
        from jobs.stages.prompts import engine_context, shard_prompts

        prompts, first = shard_prompts(cfg, run, 0)
        messages = [p.messages for p in prompts]
        sampling = cfg.synthesis.sampling.resolved(model_sampling_defaults(model))
        seeds = prompt_seeds(sampling.seed, "synthesize_chosen", first, len(prompts))
        # On CPU a prompt prefilled in chunks takes a sampled token back by rewinding its seeded
        # generator, which CPU generators cannot: a token budget that holds every prompt keeps them whole.
        import torch

        whole_prompts = {} if torch.cuda.is_available() else {"max_num_batched_tokens": 1 << 17}
        engine = VLLMBackend(model, "bfloat16" if args.model else "float32", max_model_len=engine_context(cfg),
                             engine_args=whole_prompts)
        engine.llm.chat(messages[:8], engine._params(sampling, seeds[:8]), use_tqdm=False)  # warm-up

        def bare(with_seeds: bool) -> tuple[float, int]:
            started = time.perf_counter()
            outputs = engine.llm.chat(messages, engine._params(sampling, seeds if with_seeds else [None] * len(seeds)),
                                      use_tqdm=False)
            return time.perf_counter() - started, output_tokens(outputs)

        def batched() -> tuple[float, int]:
            started, tokens = time.perf_counter(), 0
            for start in range(0, len(messages), args.batch_size):
                outputs = engine.generate(messages[start:start + args.batch_size], sampling,
                                          seeds[start:start + args.batch_size])
                tokens += sum(g.completion_tokens for g in outputs)
            return time.perf_counter() - started, tokens

        def ours() -> tuple[float, int]:
            started = time.perf_counter()
            synthesize(cfg, run, 0, "synthesize_chosen", model, backend=engine)
            seconds = time.perf_counter() - started
            rows = RowFile(run.shard_file("synthesize_chosen", 0)).existing()
            return seconds, sum(row["completion_tokens"] for row in rows)

        results = {"bare LLM.chat, seeded": bare(True), "our synthesis stage": ours(),
                   "batch at a time": batched(), "bare LLM.chat, unseeded": bare(False)}
        lengths = sorted(row["completion_tokens"] for row in RowFile(run.shard_file("synthesize_chosen", 0)).existing())
        print(f"{len(prompts)} prompts, {args.max_new_tokens} new tokens at most, {model if args.model else 'random model'}; "
              f"response tokens: min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]}")
        rate = {name: tokens / seconds for name, (seconds, tokens) in results.items()}
        for name, (seconds, tokens) in results.items():
            print(f"  {name:<26} {tokens:>8} output tokens in {seconds:7.2f}s = {rate[name]:9.1f} tokens/s")
        print(f"ours / bare (seeded):             {rate['our synthesis stage'] / rate['bare LLM.chat, seeded']:.3f}")
        print(f"batch at a time / bare (seeded):  {rate['batch at a time'] / rate['bare LLM.chat, seeded']:.3f}")
        print(f"seeded / unseeded (bare):         {rate['bare LLM.chat, seeded'] / rate['bare LLM.chat, unseeded']:.3f}")


if __name__ == "__main__":  # vLLM spawns its engine process: the guard keeps it from rerunning this
    main()
