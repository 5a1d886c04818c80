"""Generation backends for synthesis: HF `generate` (CPU, tests, small runs) and vLLM offline
(`LLM.chat`, one engine per task), behind one call: generate(prompts, sampling, seeds), one seed
per prompt."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from retmask.synthesis_config import SamplingConfig
from retmask.generation import Generation
from retmask.masking import LINKED_SINGLE_FILE, MASK_RECORD, MASKED_WEIGHTS_FILE

# The opening tag is optional: Olmo-3-Think's template opens the think block itself, so the
# model emits only "…</think>answer".
THINK = re.compile(r"^\s*(?:<think>)?(.*?)</think>\s*", re.DOTALL)


def split_reasoning(text: str, opened: bool = False) -> tuple[str, str | None, bool]:
    """"<think>…</think>answer" (Qwen3) or "…</think>answer" (Olmo-3-Think) -> (answer, reasoning,
    whether the reasoning finished). A response that began reasoning ("<think>", or after a
    generation prompt that `opened` the block) and never closed it was cut off inside it: all of it
    is reasoning and there is no answer (kept as raw text, a chat template would render it as a
    second think block)."""
    match = THINK.match(text)
    if match:
        return text[match.end():], match.group(1).strip(), True
    stripped = text.lstrip()
    if stripped.startswith("<think>") or opened:
        return "", stripped.removeprefix("<think>").strip(), False
    return text, None, True


def template_opens_reasoning(tokenizer, chat_template_kwargs: dict | None) -> bool:
    """Whether the generation prompt ends inside an open think block (Olmo-3-Think's always does)."""
    if not tokenizer.chat_template:
        return False
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "?"}], tokenize=False,
                                           add_generation_prompt=True, **(chat_template_kwargs or {}))
    return prompt.rstrip().endswith("<think>")


def _chat_template_kwargs(enable_thinking: bool | None) -> dict | None:
    return None if enable_thinking is None else {"enable_thinking": enable_thinking}


class HFBackend:
    """HF `generate`. A batch samples from one random stream, seeded by its first prompt's seed:
    batches are fixed by prompt position, so a resumed shard still reproduces an uninterrupted one."""

    def __init__(self, model_path: str, dtype: str = "float32", batch_size: int = 16,
                 enable_thinking: bool | None = None):
        from retmask.generation import load_model

        self.model, self.tokenizer = load_model(model_path, dtype)
        self.batch_size = batch_size
        self.chat_template_kwargs = _chat_template_kwargs(enable_thinking)
        self.opens_reasoning = template_opens_reasoning(self.tokenizer, self.chat_template_kwargs)

    def generate(self, prompts: list[list[dict]], sampling: SamplingConfig, seeds: list[int]) -> list[Generation]:
        from retmask.generation import generate

        # Temperature 0 is greedy decoding, as in vLLM. Unset fields are the engine's neutral values,
        # not the HF generation config's (its top_k defaults to 50): `sampling` is already resolved.
        return generate(self.model, self.tokenizer, prompts, self.chat_template_kwargs,
                        max_new_tokens=sampling.max_new_tokens, batch_size=self.batch_size,
                        do_sample=sampling.temperature > 0, temperature=sampling.temperature, top_p=sampling.top_p,
                        top_k=sampling.top_k or 0, min_p=sampling.min_p,
                        repetition_penalty=sampling.repetition_penalty or 1.0, seed=seeds[0])


def check_reads_masked_file_last(iterator) -> None:
    """A masked checkpoint names each masked o_proj twice (the linked original file and ours), and
    vLLM reads every tensor of every file: the file read last wins. vLLM sorts the files before
    reading them since early 2026 (ours sorts last); an older one reads them in directory order
    and could silently load the unmasked weights. `iterator` is vLLM's safetensors weights
    iterator, tried here on two one-tensor files given in the wrong order."""
    import inspect
    import tempfile

    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        original, masked = Path(tmp) / LINKED_SINGLE_FILE, Path(tmp) / MASKED_WEIGHTS_FILE
        save_file({"w": torch.zeros(1)}, original)
        save_file({"w": torch.ones(1)}, masked)
        arguments = [[str(masked), str(original)]]
        if "use_tqdm_on_load" in inspect.signature(iterator).parameters:
            arguments.append(False)
        last = [float(tensor) for _, tensor in iterator(*arguments)][-1]
    if last != 1.0:
        raise RuntimeError("this vLLM reads weight files in directory order, so it could load a masked "
                           "checkpoint's original o_proj after the masked one; install a vLLM that sorts them "
                           "(2026 or later) or use synthesis.backend: hf")


class VLLMBackend:
    """vLLM offline inference; each prompt gets its own seed, so a resumed shard reproduces an
    uninterrupted one whatever else the engine runs beside it."""

    def __init__(self, model_path: str, dtype: str = "bfloat16", tensor_parallel_size: int = 0,
                 enable_thinking: bool | None = None, max_model_len: int | None = None,
                 engine_args: dict | None = None):
        try:
            from vllm import LLM
        except ImportError:
            raise ImportError("synthesis.backend is 'vllm' but vllm is not installed: pip install 'retmask[vllm]'")
        # 0: one engine over every GPU the job was given (SLURM sets the visible devices).
        tensor_parallel_size = tensor_parallel_size or max(1, torch.cuda.device_count())
        if (Path(model_path) / MASK_RECORD).is_file():
            from vllm.model_executor.model_loader import weight_utils

            check_reads_masked_file_last(weight_utils.safetensors_weights_iterator)
        self.llm = LLM(model=model_path, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                       max_model_len=max_model_len, **(engine_args or {}))
        self.chat_template_kwargs = _chat_template_kwargs(enable_thinking)
        self.opens_reasoning = template_opens_reasoning(self.llm.get_tokenizer(), self.chat_template_kwargs)

    @staticmethod
    def _params(sampling: SamplingConfig, seeds: list[int | None]):
        from vllm import SamplingParams

        return [SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p,
                               max_tokens=sampling.max_new_tokens, seed=seed, **sampling.engine_fields())
                for seed in seeds]

    @staticmethod
    def _generation(output) -> Generation:
        completion = output.outputs[0]
        return Generation(text=completion.text, prompt_tokens=len(output.prompt_token_ids),
                          completion_tokens=len(completion.token_ids), finish_reason=completion.finish_reason or "stop")

    def generate(self, prompts: list[list[dict]], sampling: SamplingConfig, seeds: list[int]) -> list[Generation]:
        outputs = self.llm.chat(prompts, self._params(sampling, seeds), use_tqdm=False,
                                chat_template_kwargs=self.chat_template_kwargs)
        return [self._generation(output) for output in outputs]

    def stream(self, prompts: list[list[dict]], sampling: SamplingConfig, seeds: list[int]):
        """Every prompt to the engine at once, so it schedules continuously (a batch waits for its
        slowest response); yields (index, Generation) as each one finishes."""
        # Requests are numbered by LLM's counter in the order they are added (its own _run_engine
        # sorts its outputs by that number): the first number gives each output's prompt.
        first = getattr(getattr(self.llm, "request_counter", None), "counter", None)
        if first is None or not hasattr(self.llm, "enqueue_chat"):  # another vLLM: all at once, unstreamed
            yield from enumerate(self.generate(prompts, sampling, seeds))
            return
        self.llm.enqueue_chat(prompts, self._params(sampling, seeds), use_tqdm=False,
                              chat_template_kwargs=self.chat_template_kwargs)
        engine = self.llm.llm_engine  # stepped as LLM's own wait_for_completion does, yielding as it goes
        while engine.has_unfinished_requests():
            for output in engine.step():
                if output.finished:
                    yield int(output.request_id) - first, self._generation(output)


def make_backend(name: str, model_path: str, dtype: str, batch_size: int, tensor_parallel_size: int = 0,
                 enable_thinking: bool | None = None, max_model_len: int | None = None):
    if name == "hf":
        return HFBackend(model_path, dtype, batch_size, enable_thinking)
    if name == "vllm":
        return VLLMBackend(model_path, dtype, tensor_parallel_size, enable_thinking, max_model_len)
    raise ValueError(f"unknown generation backend {name!r}: expected hf or vllm")
