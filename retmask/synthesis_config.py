"""The experiment's synthesis sections: prompts and sampling (`synthesis`), which pairs are kept
(`pairs`), and how win-lose-pair's judge ranks two samples (`judge`)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from retmask.judging import DEFAULT_JUDGE_TEMPLATE
from retmask.prompts import FORMATS as PROMPT_FORMATS
from retmask.typed_yaml import ConfigError, check_choice, check_positive


# Sampling fields a vLLM server takes from the model's generation_config.json when a request leaves
# them out (its --generation-config auto): the paper's requests set temperature, top_p, max_tokens.
MODEL_DEFAULT_FIELDS = ("top_k", "min_p", "repetition_penalty")


@dataclass
class SamplingConfig:
    temperature: float = 0.6
    top_p: float = 1.0
    max_new_tokens: int = 2048
    seed: int = 0
    # Unset (null): the model's generation_config.json value, as the paper's vLLM server filled them
    # (Qwen3-8B: top_k 20); without one, the engine's neutral value (no top-k, no min-p, penalty 1).
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None

    def resolved(self, model_defaults: dict) -> SamplingConfig:
        """These settings with the unset fields filled from `model_defaults` (model_sampling_defaults)."""
        filled = {key: model_defaults[key] for key in MODEL_DEFAULT_FIELDS
                  if getattr(self, key) is None and model_defaults.get(key) is not None}
        return replace(self, **filled)

    def engine_fields(self) -> dict:
        """The fields set (the engines' own neutral values stand for the rest)."""
        return {key: getattr(self, key) for key in MODEL_DEFAULT_FIELDS if getattr(self, key) is not None}


def model_sampling_defaults(model_path: str) -> dict:
    """The sampling fields a model's generation_config.json sets, of those a request may leave out."""
    path = Path(model_path) / "generation_config.json"
    found = json.loads(path.read_text()) if path.is_file() else {}
    return {key: found[key] for key in MODEL_DEFAULT_FIELDS if found.get(key) is not None}


@dataclass
class SynthesisConfig:
    prompts: str = ""  # jsonl/parquet file or saved `datasets` directory
    prompt_format: str = "auto"  # auto, lmsys, lmsys-synth (the paper's), wildchat, messages, prompt
    prompt_column: str = ""  # default: the format's own column
    turns: str = "first"  # first user turn, or "prefix": the conversation up to its last user turn
    languages: list[str] = field(default_factory=list)  # keep only these (LMSYS/WildChat `language`)
    drop_redacted: bool = True
    drop_flagged: bool = False  # moderation-flagged rows
    dedup: bool = True
    max_prompt_tokens: int = 0  # 0 = no limit
    max_prompts: int = 0  # 0 = all
    shards: int = 2
    batch_size: int = 16  # hf: prompts per generate call (vllm takes a shard's whole prompt list at once)
    backend: str = "hf"  # hf (transformers generate) or vllm
    tensor_parallel_size: int = 0  # vllm: GPUs per engine; 0 = every GPU the task was given (the profile's)
    enable_thinking: bool | None = None  # chat-template switch of reasoning models (Qwen3); None: leave as is
    # The engine's context (vLLM's max_model_len; the paper's server ran 32768); 0: what the
    # sampling models serve (the least of their positions). Prompts longer than the context less
    # sampling.max_new_tokens are dropped and counted, whatever the backend.
    max_model_len: int = 0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def prompt_token_limit(self, context: int) -> int:
        """The longest prompt kept in an engine of `context` tokens (the run's engine_context)."""
        limit = context - self.sampling.max_new_tokens
        return min(limit, self.max_prompt_tokens) if self.max_prompt_tokens else limit

    def validate(self, key: str) -> None:
        check_positive(key, "shards", self.shards)
        check_positive(key, "batch_size", self.batch_size)
        if self.max_model_len < 0:
            raise ConfigError(f"{key}.max_model_len must be >= 0 (0: the models' own context), got {self.max_model_len}")
        if self.max_model_len and self.max_model_len <= self.sampling.max_new_tokens:
            raise ConfigError(f"{key}.max_model_len ({self.max_model_len}) must exceed sampling.max_new_tokens "
                              f"({self.sampling.max_new_tokens}): the prompt needs room too")
        if self.tensor_parallel_size < 0:
            raise ConfigError(f"{key}.tensor_parallel_size must be >= 0 (0: every GPU of the task), "
                              f"got {self.tensor_parallel_size}")
        check_choice(key, "backend", self.backend, ("hf", "vllm"))
        check_choice(key, "turns", self.turns, ("first", "prefix"))
        check_choice(key, "prompt_format", self.prompt_format, ("auto", *PROMPT_FORMATS))


@dataclass
class PairsConfig:
    """Which pairs are kept, and what they hold. An empty rejected response is the ablated model
    failing to answer: that is the signal RetMask learns from, so it is kept (and counted). An
    empty chosen response gives nothing to prefer, so it is dropped. A chosen response cut off at
    max_new_tokens is no answer to prefer (dropped); a rambling ablated model cut off is a
    legitimate rejection (kept). Every drop is counted by its reason."""

    drop_identical: bool = True
    drop_empty_chosen: bool = True
    drop_empty_rejected: bool = False
    drop_truncated_chosen: bool = True
    drop_truncated_rejected: bool = False
    # Reasoning models: the responses keep their <think> block as the model wrote it (the
    # paper's pairs); false trains on the answers alone (the paper's section 4.4 ablation).
    keep_reasoning: bool = True
    # A response cut off inside its reasoning (no answer yet): "keep" it as reasoning with an empty
    # answer (the truncation and empty-response rules above still apply), or "drop" the pair.
    unfinished_reasoning: str = "keep"

    def validate(self, key: str) -> None:
        check_choice(key, "unfinished_reasoning", self.unfinished_reasoning, ("keep", "drop"))


@dataclass
class JudgeConfig:
    """How win-lose-pair decides which of two samples of the normal model is chosen.

    reference: ROUGE-1 recall of the prompt's reference answer (prompt sets with a `reference`
    column, as the toy's). model: a local judge model (the paper used Gemma-3-27B-IT) rates each
    response with `template`, which must ask for the rating as "[[N]]"."""

    kind: str = "reference"
    path: str = ""  # the judge model's local checkpoint (kind: model)
    backend: str = "vllm"  # vllm (at the paper's scale: ~2 x 294K ratings by a 27B model) or hf, as synthesis.backend
    dtype: str = "bfloat16"
    template: str = DEFAULT_JUDGE_TEMPLATE
    max_new_tokens: int = 512
    batch_size: int = 256  # prompts per engine call (both samples of each): verdicts are written a batch at a time
    shards: int = 0  # array tasks over the prompts; 0: as many as synthesis.shards
    # A prompt whose two samples the judge rates alike (or does not rate): drop it, or keep it with
    # the first sample as chosen.
    ties: str = "drop"

    def validate(self, key: str) -> None:
        check_choice(key, "kind", self.kind, ("reference", "model"))
        check_choice(key, "ties", self.ties, ("drop", "keep"))
        check_choice(key, "backend", self.backend, ("hf", "vllm"))
        check_positive(key, "batch_size", self.batch_size)
        if self.shards < 0:
            raise ConfigError(f"{key}.shards must be >= 0 (0: as many as synthesis.shards), got {self.shards}")
        if "{question}" not in self.template or "{answer}" not in self.template:
            raise ConfigError(f"{key}.template must contain {{question}} and {{answer}}, got {self.template!r}")
