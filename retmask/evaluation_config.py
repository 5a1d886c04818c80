"""The experiment's evaluation sections: NIAH and control masks (`evaluation`), HELMET on the
user's checkout (`helmet`), general benchmarks through lm-evaluation-harness (`general`)."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retmask.typed_yaml import ConfigError, check_choice, check_positive


@dataclass
class EvaluationConfig:
    niah_lengths: list[int] = field(default_factory=lambda: [48, 128, 4])
    niah_depths: int = 5
    random_control_draws: int = 3  # draws per control rule
    # Control masks of the retrieval set's size: non_retrieval draws heads outside it, random from all.
    control_rules: list[str] = field(default_factory=lambda: ["non_retrieval"])
    seed: int = 0
    # NIAH prompts are batched so that batch size x (longest prompt + new tokens) stays within
    # this many tokens (one prompt at least): an 8B model's KV cache at 128K with batch 1 fits 80 GB.
    batch_tokens: int = 132_000
    beyond_max_positions: bool = False  # as detection.beyond_max_positions

    def validate(self, key: str) -> None:
        for rule in self.control_rules:
            check_choice(key, "control_rules[]", rule, ("non_retrieval", "random"))


@dataclass
class HelmetConfig:
    """HELMET runs on the user's own checkout and data (never downloaded by us); empty path: none."""

    path: str = ""  # a HELMET checkout (its eval.py and data/)
    # files of <path>/configs, each a set of tasks and lengths: HELMET's *_short.yaml run 8K-64K, the
    # others 128K, so the paper's 8K-128K takes both of each category
    configs: list[str] = field(default_factory=lambda: [
        f"{category}{suffix}.yaml" for category in ("recall", "rag", "rerank", "cite", "longqa", "summ", "icl")
        for suffix in ("_short", "")])
    lengths: list[int] = field(default_factory=lambda: [8192, 16384, 32768, 65536, 131072])
    models: list[str] = field(default_factory=lambda: ["base", "trained"])
    use_vllm: bool = False
    # HELMET's --thinking, for a model that reasons (Qwen3 with reasoning on, Olmo-3-Think): 32,768 more
    # new tokens and the answer scored without its <think> block. With vLLM the engine keeps the
    # length it was loaded with (the longest input), so reasoning ends at the model's length.
    thinking: bool = False
    # A rope scaling applied to evaluation copies of the checkpoints (never the checkpoints), for
    # lengths past the model's positions: Qwen3-8B (40,960) at 128K takes
    # {rope_type: yarn, factor: 4.0, original_max_position_embeddings: 32768}, as its model card says.
    rope_scaling: dict[str, Any] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)  # more eval.py arguments, passed as given

    def validate(self, key: str) -> None:
        for model in self.models:
            check_choice(key, "models[]", model, ("base", "trained"))
        if self.path and not (Path(self.path).expanduser() / "eval.py").is_file():
            raise ConfigError(f"{key}.path: {self.path} is not a HELMET checkout (no eval.py); give the path of "
                              "your clone of princeton-nlp/HELMET with its data downloaded")
        if self.path:
            self._check_lengths_run(key)
        from retmask.model_positions import check_rope_scaling

        check_rope_scaling(f"{key}.rope_scaling", self.rope_scaling)
        owned = [a for a in self.extra_args if a.split("=")[0] in ("--thinking", "--use_vllm", "--rope_theta")]
        if owned:
            raise ConfigError(f"{key}.extra_args: {', '.join(owned)}: set {key}.thinking, {key}.use_vllm or "
                              f"{key}.rope_scaling instead, which the checks before submission read")

    def _check_lengths_run(self, key: str) -> None:
        """Every length averaged must be one some config runs: else each of its averages would only
        ever be incomplete."""
        from retmask.helmet import HelmetError, config_lengths

        try:
            run = {name: config_lengths(self.path, name) for name in self.configs}
        except HelmetError as error:
            raise ConfigError(f"{key}.configs: {error}") from None
        if lost := [n for n in self.lengths if not any(n in lengths for lengths in run.values())]:
            ran = "; ".join(f"{name}: {', '.join(map(str, sorted(lengths)))}" for name, lengths in run.items())
            raise ConfigError(f"{key}.lengths {lost}: none of {key}.configs runs them ({ran}); add the configs that "
                              "do (HELMET's files without _short run 131072) or drop those lengths")


PAPER_JUDGE = "gpt-4o-2024-05-13"  # HELMET's judge of LongQA and Summ in the paper


@dataclass
class HelmetJudgeConfig:
    """HELMET's GPT-4 judge of LongQA and Summ (its scripts/eval_gpt4_longqa.py and
    eval_gpt4_summ.py, run on the outputs of the helmet stages); no endpoint: not judged, and those
    categories' judged averages stay incomplete (their ROUGE proxy does not need it)."""

    # "openai": OpenAI's API as HELMET calls it (its Batch API; OPENAI_API_KEY in the job's
    # environment); else the base URL of an OpenAI-compatible server the jobs reach, e.g.
    # http://judge-node:8000/v1 of `vllm serve /models/Qwen2.5-72B-Instruct` (HELMET's own endpoint
    # model class, one request per item).
    endpoint: str = ""
    # The model asked: the paper's by default; for a server, the name it serves (vLLM: the path it
    # serves, whose tokenizer HELMET's endpoint class loads)
    model: str = PAPER_JUDGE

    def validate(self, key: str) -> None:
        if self.endpoint and self.endpoint != "openai" and not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{key}.endpoint: {self.endpoint!r} is neither \"openai\" nor a server's base URL; "
                              "give e.g. http://judge-node:8000/v1, or \"openai\" for OpenAI's API")
        if not self.model:
            raise ConfigError(f"{key}.model: name the judge model, e.g. {PAPER_JUDGE} (the paper's)")

    @property
    def label(self) -> str:
        """How judged scores are labelled: the paper's judge, or this one, named."""
        return self.model if self.endpoint == "openai" else f"{self.model} at {self.endpoint}"

    @property
    def is_papers(self) -> bool:
        return self.endpoint == "openai" and self.model == PAPER_JUDGE


CODE_TASK_PREFIXES = ("humaneval", "mbpp")  # lm-eval tasks marked unsafe_code: they execute generated code


def runs_code(task: str) -> bool:
    return task.startswith(CODE_TASK_PREFIXES)


# The score each benchmark of the paper's Table 5 is read by (lm-eval's "<metric>,<filter>" keys):
# the answer extracted from a generation, as a reasoning model writes one
HEADLINE_METRICS = {"gpqa_main_cot_zeroshot": "exact_match,flexible-extract", "gpqa_diamond_cot_zeroshot":
                    "exact_match,flexible-extract", "minerva_math500": "math_verify,none",
                    "mmlu_pro": "exact_match,custom-extract", "humaneval": "pass@1,create_test",
                    "humaneval_instruct": "pass@1,create_test"}
GENERAL_STAGE_MODEL_ARGS = ("pretrained", "dtype", "device")  # lm-eval model arguments the general stage sets


@dataclass
class GeneralConfig:
    """General benchmarks (paper Table 5) of the base and the trained model through
    lm-evaluation-harness, if installed; no tasks: no stage."""

    tasks: list[str] = field(default_factory=list)  # lm-eval tasks or groups, e.g. [gpqa_main_cot_zeroshot, mmlu_pro]
    # task -> lm-eval's metric key ("<metric>,<filter>"); default: HEADLINE_METRICS, else its first metric
    metrics: dict[str, str] = field(default_factory=dict)
    # lm-eval's gen_kwargs, over every generative task's own: a reasoning model needs room for its
    # reasoning (mmlu_pro stops at 2,048 new tokens, minerva_math500 at lm-eval's default 256)
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    # Tasks that run the model's code (HumanEval, MBPP: lm-eval's unsafe_code tasks) run only when
    # this is true; false: they are left out, and their cells say why
    allow_code_execution: bool = False

    def runnable_tasks(self) -> list[str]:
        """general.tasks less those that would run the model's code without permission."""
        return [t for t in self.tasks if self.allow_code_execution or not runs_code(t)]
    limit: int = 0  # examples per task; 0 = all
    batch_size: int = 8
    # A folder of task YAMLs of your own (lm-eval's --include_path), e.g. configs/lm_eval_tasks;
    # lm-eval runs from it, so relative data_files in those YAMLs are read from it.
    include_path: str = ""
    # The models RetMask trains are chat models: prompts go through the tokenizer's chat template
    # (few-shot examples as turns). false: lm-eval's plain-text prompts.
    apply_chat_template: bool = True
    # More arguments of lm-eval's `hf` model, as given: e.g. think_end_token: "</think>" scores a
    # reasoning model's answer without its reasoning. The checkpoint, dtype and device are the stage's.
    model_args: dict[str, Any] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        if self.tasks and importlib.util.find_spec("lm_eval") is None:
            raise ConfigError(f"{key}.tasks is set but lm-evaluation-harness is not installed: pip install lm-eval, "
                              "or leave general.tasks empty")
        if self.include_path and not self.tasks:
            raise ConfigError(f"{key}.include_path is set but {key}.tasks is empty; name the tasks to run from it, "
                              f"e.g. tasks: [toy_copy]")
        unknown = [task for task in self.metrics if task not in self.tasks]
        if unknown:
            raise ConfigError(f"{key}.metrics names {', '.join(unknown)}, not in {key}.tasks {self.tasks}; key "
                              "metrics by a task of general.tasks")
        owned = sorted(set(self.model_args) & set(GENERAL_STAGE_MODEL_ARGS))
        if owned:
            raise ConfigError(f"{key}.model_args: {', '.join(owned)} the stage sets itself (the base and the trained "
                              "checkpoint, model.dtype, the job's device); leave them out")
        check_positive(key, "batch_size", self.batch_size)
        if self.limit < 0:
            raise ConfigError(f"{key}.limit must be >= 0 (0: every example), got {self.limit}")

    def check_task_folder(self, key: str) -> None:
        """include_path, once resolved, must hold lm-eval task YAMLs."""
        folder = Path(self.include_path)
        if not folder.is_dir() or not any(folder.rglob("*.yaml")):
            raise ConfigError(f"{key}.include_path: {self.include_path} is not a folder of lm-eval task YAML files; "
                              "give the folder that holds your task folders, e.g. configs/lm_eval_tasks")
