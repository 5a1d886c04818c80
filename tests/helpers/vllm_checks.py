"""The vLLM synthesis backend, run for real on the toy model with vLLM's CPU build.

Runs inside its own environment (vLLM's CPU build pins an older transformers than the project's;
see tests/helpers/vllm_env.py) and writes its findings to <work>/findings.json (vLLM logs to
stdout), which tests/retmask/test_backends_vllm.py asserts on:
- a synthesis shard through `jobs.stages.synthesize` with `synthesis.backend: vllm`;
- the engine gets the shard's whole prompt list at once (24 requests in flight, batch_size 8);
- a shard killed with some rows written, in the order they finished, resumes to the uninterrupted
  rows (per-prompt seeds);
- the engine's context is what the model serves when `synthesis.max_model_len` is left unset (the
  toy's 256 positions: the default once asked vLLM for 32768 and it refused to start);
- the masked checkpoint, read by vLLM's own weight loader, answers greedily as the HF model
  masked in memory does (and unlike the unmasked model).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path


def main(toy_dir: str, work: str, heads: str) -> None:
    from jobs.stages.synthesize import synthesize
    from retmask import backends
    from retmask.config import load_config
    from retmask.masking import heads_from_names, mask_heads_in_memory, write_masked_checkpoint
    from retmask.rows import RowFile
    from retmask.rundir import RunDir

    repo, work_dir = Path(__file__).resolve().parents[2], Path(work)
    cfg = load_config(repo / "configs" / "tiny.yaml", [
        "synthesis.backend=vllm", "synthesis.max_prompts=24", "synthesis.shards=1",
        "synthesis.batch_size=8", "synthesis.sampling.temperature=1.0", "synthesis.sampling.max_new_tokens=14"])
    cfg.model.path = toy_dir

    engines: dict[str, backends.VLLMBackend] = {}  # one engine per model for the whole check (each start is slow)
    make_backend = backends.make_backend
    in_flight: list[int] = []  # requests the engine holds at each step

    def counted(backend):
        engine, step = backend.llm.llm_engine, backend.llm.llm_engine.step
        engine.step = lambda: in_flight.append(engine.get_num_unfinished_requests()) or step()
        return backend

    backends.make_backend = lambda name, path, *rest: engines.get(path) or engines.setdefault(
        path, counted(make_backend(name, path, *rest)))

    def shard_rows(run: RunDir) -> list[dict]:
        return RowFile(run.shard_file("synthesize_chosen", 0)).existing()

    def by_id(row: dict) -> str:
        return row["prompt_id"]

    from jobs.stages.prompts import run as prepare_prompts

    whole = RunDir(work_dir / "whole")
    prepare_prompts(cfg, whole, 0)
    synthesize(cfg, whole, 0, "synthesize_chosen", toy_dir)
    cut = RunDir(work_dir / "cut")
    prepare_prompts(cfg, cut, 0)
    # killed with a third of its rows written, in the order they finished, the last one cut mid-line
    RowFile(cut.shard_file("synthesize_chosen", 0)).append(shard_rows(whole)[::3])
    with open(cut.shard_file("synthesize_chosen", 0), "a") as handle:
        handle.write('{"prompt_id": "toy-')
    synthesize(cfg, cut, 0, "synthesize_chosen", toy_dir)
    engine = engines[toy_dir]

    masked_dir = work_dir / "masked"
    head_list = heads_from_names(heads.split(","))
    write_masked_checkpoint(toy_dir, head_list, masked_dir)
    prompts = [row["messages"] for row in shard_rows(whole)[:16]]
    greedy = dataclasses.replace(cfg.synthesis.sampling, temperature=0.0)
    vllm_masked = [g.text for g in backends.make_backend("vllm", str(masked_dir), "float32", 8, 0, None, 256)
                   .generate(prompts, greedy, list(range(len(prompts))))]
    vllm_base = [g.text for g in engine.generate(prompts, greedy, list(range(len(prompts))))]

    from retmask.generation import greedy_generate, load_model

    model, tokenizer = load_model(toy_dir)
    hf_base = greedy_generate(model, tokenizer, prompts, max_new_tokens=14)
    mask_heads_in_memory(model, head_list)
    hf_masked = greedy_generate(model, tokenizer, prompts, max_new_tokens=14)

    whole_rows = shard_rows(whole)
    (work_dir / "findings.json").write_text(json.dumps({
        "rows": len(whole_rows),
        "distinct_responses": len({row["response"] for row in whole_rows}),
        "resumed_equals_whole": sorted(shard_rows(cut), key=by_id) == sorted(whole_rows, key=by_id),
        "most_in_flight": max(in_flight),
        "max_model_len": engine.llm.llm_engine.model_config.max_model_len,
        "vllm_masked": vllm_masked, "hf_masked": hf_masked,
        "vllm_base": vllm_base, "hf_base": hf_base,
    }))


if __name__ == "__main__":  # vLLM spawns its engine process: the guard keeps it from rerunning this
    main(*sys.argv[1:4])
