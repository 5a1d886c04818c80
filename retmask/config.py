"""Typed experiment configuration: YAML -> nested dataclasses, validated on load.

Kept free of torch/transformers imports so a login node can load, validate and submit quickly.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from retmask.io import fingerprint
from retmask.model_positions import check_lengths
from retmask.niah import DEFAULT_TEMPLATE
from retmask.evaluation_config import EvaluationConfig, GeneralConfig, HelmetConfig, HelmetJudgeConfig
from retmask.synthesis_config import JudgeConfig, PairsConfig, SynthesisConfig
from retmask.toy.recipe import SHIPPED_TOY_MODELS, ToyModelConfig, toy_model_dir, toy_recipe_hash
from retmask.typed_yaml import (
    ConfigError,
    apply_override,
    check_choice,
    check_positive,
    from_dict,
    read_config_file,
    read_yaml_mapping,
)


@dataclass
class ModelConfig:
    # A local HF checkpoint directory, or "toy" for the cached toy model of the `toy_model` recipe.
    path: str = ""
    dtype: str = "float32"

    def validate(self, key: str) -> None:
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"{key}.dtype: {self.dtype!r} is not one of float32, bfloat16, float16")


@dataclass
class DetectionConfig:
    # builtin prose, a text file, a folder of .txt files, a saved datasets dir, or Wu et al.'s
    # haystack_for_detect (part1/, part2/, ...: needle i hidden in part i+1, read raw as Wu's code did)
    haystack: str = "builtin"
    needles: str = "builtin"  # builtin set, or a jsonl of {needle, question, answer (or Wu's real_needle)}
    template: str = DEFAULT_TEMPLATE  # needs {context} and {question}
    lengths: list[int] = field(default_factory=lambda: [48, 96, 3])  # start, end, count (tokens)
    depths: int = 5  # depths spread evenly over 0..100%
    max_new_tokens: int = 16
    rouge_threshold: float = 0.5  # an instance is scored when the answer's ROUGE-1 recall is above this
    shards: int = 2
    # Prompts longer than the model's max_position_embeddings are refused unless this is true.
    beyond_max_positions: bool = False
    # Published retrieval scores (Wu et al.'s head_score file, {"L-H": [score per kept test]}, e.g. the
    # paper authors' own) in place of running detection on the synthesis model; checked against its
    # layers and heads. Retrieval scores before and after training are still measured on the NIAH
    # instances above (evaluation needs both on one protocol).
    scores_file: str = ""

    def validate(self, key: str) -> None:
        if len(self.lengths) != 3 or self.lengths[0] > self.lengths[1] or self.lengths[2] < 1:
            raise ConfigError(f"{key}.lengths: expected [start, end, count] with start <= end and count >= 1, "
                              f"got {self.lengths}")
        check_positive(key, "depths", self.depths)
        check_positive(key, "shards", self.shards)
        if "{context}" not in self.template or "{question}" not in self.template:
            raise ConfigError(f"{key}.template must contain {{context}} and {{question}}, got {self.template!r}")


@dataclass
class SelectionConfig:
    # threshold: score >= tau; top_k: the k best; random / non_retrieval: seeded draws of `count`
    # heads (count defaults to the size of the threshold set).
    rule: str = "threshold"
    tau: float = 0.1
    top_k: int = 0
    count: int = 0
    seed: int = 0
    # Fewer heads than this at or above tau: take this many best heads instead (0: none at or above
    # tau is an error). A rehearsal's random twins have no retrieval heads.
    min_heads: int = 0

    RULES = ("threshold", "top_k", "random", "non_retrieval")

    def validate(self, key: str) -> None:
        if self.rule not in self.RULES:
            raise ConfigError(f"{key}.rule: {self.rule!r} is not one of {', '.join(self.RULES)}")
        if self.rule == "top_k" and self.top_k < 1:
            raise ConfigError(f"{key}.top_k must be >= 1 when rule is top_k, got {self.top_k}")


NO_TRACKER, ALL_TRACKERS = "none", "all"  # transformers' report_to words for no tracker / every installed one


TRAINING_REGIMES = ("full", "trl-0.24")


@dataclass
class TrainConfig:
    beta: float = 0.1
    learning_rate: float = 5e-7
    min_learning_rate: float = 5e-8
    warmup_ratio: float = 0.1
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    global_batch_size: int = 512  # = per-device batch x gradient accumulation x number of GPUs
    per_device_batch_size: int = 1
    epochs: float = 2.0
    max_steps: int = -1
    max_length: int = 4096
    # What the trainer sees of a long pair. "full" (this toolkit's): whole sequences up to max_length,
    # refusing to train when more than max_truncated_share of the pairs exceed it. "trl-0.24" (what
    # produced the paper's numbers: its DPO script set no length, so TRL 0.24's defaults applied, with
    # max_length 1024): each prompt cut to its last max_prompt_length tokens, then prompt + response
    # to its last max_length tokens, nothing refused. SFT keeps TRL's truncation (keep the start).
    regime: str = "full"
    max_prompt_length: int = 512  # regime trl-0.24
    bf16: bool = True
    gradient_checkpointing: bool = True
    logging_steps: int = 1
    save_steps: int = 50  # checkpoint interval; a restarted job resumes from the latest checkpoint
    # Checkpoints kept (the newest; the trained model is saved apart): an 8B model's optimizer state
    # is ~100 GB a checkpoint. 0 keeps them all.
    save_total_limit: int = 2
    # Whether they stay once the trained model is saved (they serve only to resume it); changes no output
    keep_checkpoints: bool = False
    # The SFT baseline's peak rate (cosine to the same share of it as DPO's floor). The paper gives
    # none; DPO's 5e-7 barely moves a model by SFT, so this is Tulu 3's SFT rate for its 8B model.
    sft_learning_rate: float = 5e-6
    precompute_ref_log_probs: bool = False
    # Liger's Triton kernels for the model's layers (RMSNorm, RoPE, SwiGLU): less activation memory
    # on GPUs. Needs the liger-kernel package and a TRL that still takes the flag (before 2.0).
    use_liger_kernel: bool = False
    max_truncated_share: float = 0.05  # refuse to train when more pairs than this exceed max_length
    deepspeed: str = ""  # a DeepSpeed config (configs/deepspeed/zero{1,2,3}.json) for multi-GPU runs
    seed: int = 0
    # Experiment trackers of transformers' report_to ([tensorboard], [wandb, trackio], ...), [all]
    # installed ones, or [none]. Names are checked against transformers' own list where training
    # starts (retmask.tracking.check_report_to): importing it here would slow every config load.
    report_to: list[str] = field(default_factory=lambda: [NO_TRACKER])

    def regime_description(self) -> str:
        """How the trainer cuts long sequences, for the reports and cards."""
        if self.regime == "trl-0.24":
            return (f"trl-0.24, the paper's: prompts cut to their last {self.max_prompt_length} tokens, prompt + "
                    f"response to the last {self.max_length} (TRL 0.24's defaults, which the paper's DPO ran with)")
        return f"full: whole sequences up to {self.max_length} tokens, training refused when too many exceed it"

    def validate(self, key: str) -> None:
        check_positive(key, "global_batch_size", self.global_batch_size)
        check_positive(key, "per_device_batch_size", self.per_device_batch_size)
        check_choice(key, "regime", self.regime, TRAINING_REGIMES)
        check_positive(key, "max_prompt_length", self.max_prompt_length)
        if self.regime == "trl-0.24" and self.max_prompt_length >= self.max_length:
            raise ConfigError(f"{key}.max_prompt_length ({self.max_prompt_length}) must be below max_length "
                              f"({self.max_length}): TRL 0.24's were 512 and 1024")
        if self.save_total_limit < 0:
            raise ConfigError(f"{key}.save_total_limit must be >= 0 (0 keeps every checkpoint), got "
                              f"{self.save_total_limit}")
        if self.sft_learning_rate <= 0:
            raise ConfigError(f"{key}.sft_learning_rate must be > 0, got {self.sft_learning_rate}")
        if not 0 <= self.max_truncated_share <= 1:
            raise ConfigError(f"{key}.max_truncated_share must be within 0..1, got {self.max_truncated_share}")
        for special in (NO_TRACKER, ALL_TRACKERS):
            if special in self.report_to and len(self.report_to) > 1:
                raise ConfigError(f"{key}.report_to: {special!r} stands alone, got {self.report_to}; give "
                                  f"[{special}] or tracker names such as [tensorboard]")
        if not self.report_to or len(set(self.report_to)) < len(self.report_to):
            raise ConfigError(f"{key}.report_to: expected distinct tracker names such as [tensorboard], or "
                              f"[{NO_TRACKER}], got {self.report_to}")


@dataclass
class ExecutionConfig:
    cluster: str = "local"  # a profile of slurm_templates/ or a path to one


@dataclass
class ExperimentConfig:
    name: str = ""
    run_dir: str = ""  # default: runs/<name>
    strategy: str = "retrieval-mask"  # or a baseline: see retmask.strategies
    # Seed of the heads a control strategy (random-mask, non-retrieval-mask) draws to mask; a
    # study sets it to each run's seed, so its interval covers the draws too.
    control_seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    rejected_model: ModelConfig = field(default_factory=ModelConfig)  # for strategy smaller-model
    toy_model: ToyModelConfig | None = None
    # Cross-model synthesis (the paper's Appendix D): heads are detected on this model and masked
    # in it, and both sides of a pair are its samples (chosen: it; rejected: its masked twin),
    # while `model` is trained, with itself as the DPO reference, and evaluated. Empty path: the
    # trained model synthesizes its own pairs.
    synthesis_model: ModelConfig = field(default_factory=ModelConfig)
    synthesis_toy_model: ToyModelConfig | None = None  # the recipe `synthesis_model.path: toy` names
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)  # for strategy win-lose-pair
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    helmet: HelmetConfig = field(default_factory=HelmetConfig)
    # a section of its own: a judge changed rejudges HELMET's outputs, it does not rerun HELMET
    helmet_judge: HelmetJudgeConfig = field(default_factory=HelmetJudgeConfig)
    general: GeneralConfig = field(default_factory=GeneralConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    def validate(self, key: str = "") -> None:
        from retmask.strategies import STRATEGIES

        if not self.name:
            raise ConfigError("name: missing; give the experiment a name (it names the run directory)")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise ConfigError(f"name: {self.name!r} may hold only letters, digits, '.', '_' and '-' (it names "
                              "directories and jobs)")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.strategy == "smaller-model" and not self.rejected_model.path:
            raise ConfigError("rejected_model.path: missing; strategy smaller-model samples rejected responses "
                              "from that model")
        if self.cross_model and STRATEGIES[self.strategy].rejected_from == "rejected_model":
            # Its rejected side is a third model: the pair would no longer contrast the synthesis
            # model with a weakened version of itself.
            fitting = [s.name for s in STRATEGIES.values() if s.rejected_from != "rejected_model"]
            raise ConfigError(f"synthesis_model.path: strategy {self.strategy} samples rejected responses from "
                              f"rejected_model, not from the synthesis model; with a synthesis model use one of "
                              f"{', '.join(fitting)}, or leave synthesis_model.path empty")

    @property
    def cross_model(self) -> bool:
        """Whether another model than the trained one detects, is masked and synthesizes."""
        return bool(self.synthesis_model.path)

    def synthesis_source(self) -> ModelConfig:
        """The model that is detected, masked and sampled: synthesis_model if set, else `model`."""
        return self.synthesis_model if self.cross_model else self.model

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def section_fingerprint(self, *sections: str) -> str:
        data = self.to_dict()
        return fingerprint({name: data[name] for name in sections})


def load_config(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Load, override, validate and resolve an experiment config."""
    path = Path(path)
    data = read_config_file(path, "config file")
    for assignment in overrides:
        apply_override(data, assignment)
    config = from_dict(ExperimentConfig, data)
    return resolve(config, base=path.parent)


TOY_ASSET = "toy:"


def _check_model_dir(key: str, path: str) -> None:
    if not path:
        raise ConfigError(f"{key}: missing; give a local HF checkpoint directory")
    if not (Path(path).expanduser() / "config.json").is_file():
        raise ConfigError(f"{key}: {path} is not a HF checkpoint directory (no config.json); give a local "
                          "checkpoint directory (models are never downloaded) or 'toy'")


def resolve(config: ExperimentConfig, base: Path, detection_only: bool = False) -> ExperimentConfig:
    """Turn `toy`/`toy:<asset>` references into cache paths and check that local paths exist, every
    missing one named in one error. A detection-only experiment (`retmask detect`) reads no prompts,
    so needs none."""
    from retmask.strategies import get_strategy

    problems: list[str] = []

    def checked(check, *args):
        try:
            return check(*args)
        except ConfigError as error:
            problems.append(str(error))
            return None

    if config.model.path == "toy":
        if config.toy_model is None:
            raise ConfigError("model.path is 'toy' but there is no toy_model section with its recipe")
        config.model.path = str(toy_model_dir(config.toy_model))
    elif not config.model.path:
        problems.append("model.path: missing; give a local HF checkpoint directory or 'toy'")
    else:
        checked(_check_model_dir, "model.path", config.model.path)
    if config.rejected_model.path or get_strategy(config.strategy).rejected_from == "rejected_model":
        checked(_check_model_dir, "rejected_model.path", config.rejected_model.path)
    checked(_resolve_synthesis_model, config)
    if config.helmet.path and config.model.path and config.helmet.models:
        # the trained model has the base model's positions; HELMET loads the longest length first
        checked(check_lengths, "helmet.lengths", config.model.path, config.helmet.lengths, config.helmet.rope_scaling,
                "helmet.rope_scaling")
    if config.helmet.path:
        checked(_check_cite_model, config.helmet)
    if config.strategy == "win-lose-pair" and config.judge.kind == "model":
        checked(_check_model_dir, "judge.path", config.judge.path)
    if not config.run_dir:
        config.run_dir = str(Path("runs") / config.name)

    def data_path(key: str, value: str) -> str:
        if value == "builtin":
            return value
        if value.startswith(TOY_ASSET):
            if config.toy_model is None:
                raise ConfigError(f"{key}: {value!r} names a toy asset but there is no toy_model section")
            return str(toy_model_dir(config.toy_model) / "retmask_toy" / value[len(TOY_ASSET):])
        if not value:
            raise ConfigError(f"{key}: missing; give a local file path")
        resolved = Path(value).expanduser()
        if not resolved.is_absolute():  # relative to the config file, the working directory or the toolkit
            candidates = [base / resolved, Path.cwd() / resolved, Path(__file__).resolve().parents[1] / resolved]
            resolved = next((c for c in candidates if c.exists()), resolved)
        if not resolved.exists():
            raise ConfigError(f"{key}: {value} does not exist")
        return str(resolved)

    def resolved(key: str, value: str) -> str:
        found = checked(data_path, key, value)
        return value if found is None else found

    config.detection.haystack = resolved("detection.haystack", config.detection.haystack)
    config.detection.needles = resolved("detection.needles", config.detection.needles)
    if config.detection.scores_file:
        config.detection.scores_file = resolved("detection.scores_file", config.detection.scores_file)
    if config.synthesis.prompts or not detection_only:
        config.synthesis.prompts = resolved("synthesis.prompts", config.synthesis.prompts)
    if config.train.deepspeed:
        config.train.deepspeed = resolved("train.deepspeed", config.train.deepspeed)
    if config.general.include_path:
        # absolute: lm-eval indexes the folder, then runs from it (and jobs may start elsewhere)
        folder = checked(data_path, "general.include_path", config.general.include_path)
        if folder is not None:
            config.general.include_path = str(Path(folder).resolve())
            checked(config.general.check_task_folder, "general")
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else
                          f"{len(problems)} inputs are missing or wrong:\n  - " + "\n  - ".join(problems))
    return config


def _check_cite_model(helmet: HelmetConfig) -> None:
    from retmask.helmet import HelmetError, check_cite_nli_model

    try:
        check_cite_nli_model(helmet.path, helmet.configs)
    except HelmetError as error:
        raise ConfigError(str(error)) from None


def _resolve_synthesis_model(config: ExperimentConfig) -> None:
    """Turn `synthesis_model.path: toy` into its checkpoint and check that the synthesis model is
    another model than the trained one."""
    synthesis, recipe = config.synthesis_model, config.synthesis_toy_model
    if recipe is not None and synthesis.path != "toy":
        raise ConfigError(f"synthesis_toy_model is set but synthesis_model.path is {synthesis.path!r}; set "
                          "synthesis_model.path: toy to synthesize with that toy recipe, or drop synthesis_toy_model")
    if synthesis.path == "toy":
        if recipe is None:
            raise ConfigError("synthesis_model.path is 'toy' but there is no synthesis_toy_model section with its "
                              "recipe")
        # The toy_model stage trains toy_model's recipe only: this one must be shipped or cached.
        if not (toy_model_dir(recipe) / "config.json").is_file():
            raise ConfigError(f"synthesis_toy_model: no shipped or cached checkpoint of this recipe (hash "
                              f"{toy_recipe_hash(recipe)}); use a recipe shipped in {SHIPPED_TOY_MODELS}, or train "
                              "one (`retmask toy-model DIR --seed N`) and give its DIR as synthesis_model.path")
        synthesis.path = str(toy_model_dir(recipe))
    elif synthesis.path:
        _check_model_dir("synthesis_model.path", synthesis.path)
    same = Path(synthesis.path).expanduser().resolve() == Path(config.model.path).expanduser().resolve()
    if synthesis.path and same:
        raise ConfigError(f"synthesis_model.path: {synthesis.path} is the trained model (model.path); leave "
                          "synthesis_model.path empty for the trained model to synthesize its own pairs")


def read_saved_config(path: str | Path) -> ExperimentConfig:
    """The resolved config a run directory holds (its paths already resolved; not re-checked)."""
    return from_dict(ExperimentConfig, read_yaml_mapping(Path(path), "run config"))


def save_config(config: ExperimentConfig, path: Path) -> None:
    from retmask.io import write_text

    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
