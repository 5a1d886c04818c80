"""Generation backends for synthesis: HF `generate` (CPU, tests, small runs) and vLLM offline
(`LLM.chat`, one engine per task), behind one call: generate(prompts, sampling, seed)."""
from __future__ import annotations

import re

from retmask.config import SamplingConfig
from retmask.generation import Generation

THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)


def split_reasoning(text: str) -> tuple[str, str | None]:
    """Qwen3-style "<think>…</think>answer" -> (answer, reasoning); reasoning is kept apart."""
    match = THINK.match(text)
    if not match:
        return text, None
    return text[match.end():], match.group(1).strip()


class HFBackend:
    def __init__(self, model_path: str, dtype: str = "float32", batch_size: int = 16):
        from retmask.generation import load_model

        self.model, self.tokenizer = load_model(model_path, dtype)
        self.batch_size = batch_size

    def generate(self, prompts: list[list[dict]], sampling: SamplingConfig, seed: int) -> list[Generation]:
        from retmask.generation import generate

        return generate(self.model, self.tokenizer, prompts, max_new_tokens=sampling.max_new_tokens,
                        batch_size=self.batch_size, do_sample=True, temperature=sampling.temperature,
                        top_p=sampling.top_p, seed=seed)


class VLLMBackend:
    """vLLM offline inference; each prompt gets its own seed, so a resumed shard reproduces an
    uninterrupted one whatever the batch."""

    def __init__(self, model_path: str, dtype: str = "bfloat16", tensor_parallel_size: int = 0,
                 enable_thinking: bool | None = None, max_model_len: int | None = None):
        try:
            from vllm import LLM
        except ImportError:
            raise ImportError("synthesis.backend is 'vllm' but vllm is not installed: pip install 'retmask[vllm]'")
        import torch

        # 0: one engine over every GPU the job was given (SLURM sets the visible devices).
        tensor_parallel_size = tensor_parallel_size or max(1, torch.cuda.device_count())
        self.llm = LLM(model=model_path, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                       max_model_len=max_model_len)
        self.chat_template_kwargs = None if enable_thinking is None else {"enable_thinking": enable_thinking}

    def generate(self, prompts: list[list[dict]], sampling: SamplingConfig, seed: int) -> list[Generation]:
        from vllm import SamplingParams

        params = [SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p,
                                 max_tokens=sampling.max_new_tokens, seed=seed + i) for i in range(len(prompts))]
        outputs = self.llm.chat(prompts, params, use_tqdm=False, chat_template_kwargs=self.chat_template_kwargs)
        results = []
        for output in outputs:
            completion = output.outputs[0]
            results.append(Generation(text=completion.text, prompt_tokens=len(output.prompt_token_ids),
                                      completion_tokens=len(completion.token_ids),
                                      finish_reason=completion.finish_reason or "stop"))
        return results


def make_backend(name: str, model_path: str, dtype: str, batch_size: int, tensor_parallel_size: int = 0,
                 enable_thinking: bool | None = None):
    if name == "hf":
        return HFBackend(model_path, dtype, batch_size)
    if name == "vllm":
        return VLLMBackend(model_path, dtype, tensor_parallel_size, enable_thinking)
    raise ValueError(f"unknown generation backend {name!r}: expected hf or vllm")
