"""The experiment's evaluation sections: NIAH and control masks (`evaluation`), HELMET on the
user's checkout (`helmet`), general benchmarks through lm-evaluation-harness (`general`)."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

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
    extra_args: list[str] = field(default_factory=list)  # more eval.py arguments, passed as given

    def validate(self, key: str) -> None:
        for model in self.models:
            check_choice(key, "models[]", model, ("base", "trained"))
        if self.path and not (Path(self.path).expanduser() / "eval.py").is_file():
            raise ConfigError(f"{key}.path: {self.path} is not a HELMET checkout (no eval.py); give the path of "
                              "your clone of princeton-nlp/HELMET with its data downloaded")
        if self.path:
            self._check_lengths_run(key)

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


GENERAL_STAGE_MODEL_ARGS = ("pretrained", "dtype", "device")  # lm-eval model arguments the general stage sets


@dataclass
class GeneralConfig:
    """General benchmarks (paper Table 5) of the base and the trained model through
    lm-evaluation-harness, if installed; no tasks: no stage."""

    tasks: list[str] = field(default_factory=list)  # lm-eval tasks or groups, e.g. [gpqa_main_zeroshot, mmlu_pro]
    metrics: dict[str, str] = field(default_factory=dict)  # task -> metric key; default: its first metric
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
    model_args: dict[str, str] = field(default_factory=dict)

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
