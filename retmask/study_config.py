"""A study: a variant x strategy x seed grid over one experiment (`retmask study`), as typed config.

A study file is an experiment config plus a `study` section, and optionally `inputs`: the
checkpoints and data it reads, named once (`${name}` anywhere in the experiment or a variant stands
for `inputs.name`, so `--set inputs.llama=/models/...` gives a path). Each run is the experiment
with its variant's keys (a model, a prompt set...), its strategy, its seed (and, in a tau sweep,
its selection.tau) and the strategy's overrides applied.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from retmask.config import ExperimentConfig, resolve
from retmask.toy.recipe import ToyModelConfig
from retmask.typed_yaml import ConfigError, apply_override, check_choice, from_dict, merge_mappings, read_config_file


TAU_METRICS = ("niah_rouge_recall", "niah_accuracy", "helmet", "helmet_rouge")
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
INPUT_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


@dataclass
class VariantConfig:
    """One arm of a study that is more than a strategy: another model, prompt set or reasoning
    setting (the paper's Llama-3.1 and Qwen3 columns, its WildChat or Guru runs)."""

    label: str = ""  # how the paper names it; default: the variant's key
    config: dict = field(default_factory=dict)  # experiment keys this variant sets, merged into the experiment
    strategies: list[str] = field(default_factory=list)  # default: study.strategies


@dataclass
class StudyConfig:
    """A strategy x seed grid over one experiment (`retmask study`). Stages that depend on neither
    strategy nor seed run once and are shared; a seed is the synthesis and training seed."""

    strategies: list[str] = field(default_factory=lambda: [
        "retrieval-mask", "random-mask", "non-retrieval-mask", "smaller-model", "sft", "win-lose-pair"])
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])  # the seeds the report's numbers come from
    # Hyper-parameters were chosen on these and then fixed; `retmask study --development` runs them.
    development_seeds: list[int] = field(default_factory=lambda: [0])
    # Evaluation lengths at or above this are the long band (beyond the lengths trained on); those
    # below it are the short band, where ablation (claim C1) is measured.
    long_from: int = 96
    metric: str = "rouge_recall"  # or accuracy: what the claims compare
    # The smaller-model strategy's rejected source on the toy: a smaller recipe (empty: use
    # rejected_model.path of the experiment).
    smaller_toy_model: ToyModelConfig | None = None
    # Keys one strategy's runs set differently ("section.key=value"), e.g. a sampling temperature
    # at which two samples of the normal model can differ at all (win-lose-pair on the toy).
    overrides: dict[str, list[str]] = field(default_factory=dict)
    processes: int = 0  # shards running at once over all runs (0: one per CPU core)
    # A tau sweep (paper Appendix A, Table 6): each tau is a run per (strategy, seed) with
    # selection.tau set; empty: the experiment's selection.tau, one run per (strategy, seed).
    taus: list[float] = field(default_factory=list)
    # The proxy the report chooses tau on (highest mean over seeds, ties to the smaller tau):
    # the trained model's NIAH ROUGE-1 recall or accuracy at lengths >= long_from, or its HELMET
    # average over tau_helmet_categories (the run must have a helmet section): `helmet` as HELMET
    # scores them (LongQA and Summ then need GPT-4 scores), `helmet_rouge` with ROUGE in place of
    # the GPT-4 judge, as the paper's pilot runs did.
    tau_metric: str = "niah_rouge_recall"
    # Default: HELMET's seven, as the paper's proxy averaged them (its untrained Qwen3 row of Table 6
    # is the mean of Table 10's seven); eval.py scores Cite itself (through eval_alce), LongQA and
    # Summ need the judge's files under `helmet`, ROUGE under `helmet_rouge`.
    tau_helmet_categories: list[str] = field(default_factory=lambda: [
        "Recall", "RAG", "Cite", "Re-rank", "ICL", "LongQA", "Summ"])
    # Variants (name -> its keys): each runs the study's strategy x seed grid (or its own strategies).
    # Empty: the experiment alone, runs named as they always were.
    variants: dict[str, VariantConfig] = field(default_factory=dict)
    # The last stage every run goes to (empty: the report); e.g. pairs for pair statistics alone.
    until: str = ""
    # The paper's tables and figures the report renders in the paper's layout, its numbers beside
    # ours (keys of retmask.paper_tables.PAPER_TABLES).
    paper_tables: list[str] = field(default_factory=list)
    # Filled by the loader, not read from the file: inputs referenced but not given -> the keys they
    # feed, so an error about such a key can say which input to give.
    unset_inputs: dict[str, list[str]] = field(default_factory=dict)

    def strategies_of(self, variant: str | None) -> list[str]:
        own = self.variants[variant].strategies if variant is not None else []
        return own or self.strategies

    def validate(self, key: str) -> None:
        from retmask.paper_tables import PAPER_TABLES
        from retmask.strategies import STRATEGIES

        for name in self.strategies:
            check_choice(key, "strategies[]", name, tuple(STRATEGIES))
        for name, variant in self.variants.items():
            if not VARIANT_NAME.fullmatch(name):
                raise ConfigError(f"{key}.variants: {name!r} may hold only letters, digits, '.', '_' and '-' (it names "
                                  "run directories)")
            for strategy in variant.strategies:
                check_choice(f"{key}.variants.{name}", "strategies[]", strategy, tuple(STRATEGIES))
        for table in self.paper_tables:
            check_choice(key, "paper_tables[]", table, tuple(PAPER_TABLES))
        if not self.seeds:
            raise ConfigError(f"{key}.seeds: give at least one seed (three or more for intervals)")
        if overlap := set(self.seeds) & set(self.development_seeds):
            raise ConfigError(f"{key}: seeds {sorted(overlap)} are also development seeds; the report's seeds must "
                              "be others than the ones hyper-parameters were chosen on")
        check_choice(key, "metric", self.metric, ("rouge_recall", "accuracy"))
        if self.processes < 0:
            raise ConfigError(f"{key}.processes must be >= 0 (0: one per CPU core), got {self.processes}")
        every_strategy = tuple(dict.fromkeys(self.strategies + [s for v in self.variants.values() for s in v.strategies]))
        for name in self.overrides:
            check_choice(key, "overrides", name, every_strategy)
        self._validate_taus(key)

    def _validate_taus(self, key: str) -> None:
        from retmask.helmet import CATEGORIES

        outside = [tau for tau in self.taus if isinstance(tau, bool) or not 0 < tau <= 1]
        repeated = sorted({tau for tau in self.taus if self.taus.count(tau) > 1})
        if outside or repeated:
            problem = f"{outside} outside (0, 1]" if outside else f"{repeated} given twice"
            raise ConfigError(f"{key}.taus: {problem}; give distinct retrieval-score thresholds in (0, 1], "
                              "e.g. [0.05, 0.1] (empty: the experiment's selection.tau alone)")
        if self.taus:
            lacking = [name or "the study" for name in (self.variants or [None])
                       if "retrieval-mask" not in self.strategies_of(name)]
            if lacking:
                raise ConfigError(f"{key}.taus: tau is chosen on retrieval-mask runs; add retrieval-mask to the "
                                  f"strategies of {', '.join(lacking)}")
        check_choice(key, "tau_metric", self.tau_metric, TAU_METRICS)
        for category in self.tau_helmet_categories:
            check_choice(key, "tau_helmet_categories[]", category, tuple(CATEGORIES))


def load_study(path: str | Path, overrides: list[str] = ()) -> tuple[StudyConfig, dict, Path]:
    """A study file: an experiment config with a `study` section (and `inputs`). Returns the study,
    the experiment's mapping with its inputs filled in (each run applies its variant, strategy and
    seed to it, then validates it), and the folder relative paths are read from."""
    path = Path(path)
    data = read_config_file(path, "study file")
    for assignment in overrides:
        apply_override(data, assignment)
    if "study" not in data:
        raise ConfigError(f"{path}: no `study` section; a study file is an experiment config plus a study section "
                          "(strategies, seeds, development_seeds, ...)")
    inputs = data.pop("inputs", None) or {}
    if isinstance(inputs, dict):  # `--set inputs.NAME=` clears one
        inputs = {name: "" if value is None else value for name, value in inputs.items()}
    if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
        raise ConfigError(f"{path}: inputs: expected a mapping of names to paths, e.g. inputs: {{llama: /models/...}}, "
                          f"got {inputs!r}")
    study_data = _with_catalog_variants(path, data.pop("study") or {}, data.pop("variants", None) or {})
    filled, unset = fill_inputs({"experiment": data, "study": study_data}, inputs, path.parent)
    study = from_dict(StudyConfig, filled["study"], key="study")
    study.validate("study")
    study.unset_inputs = unset
    return study, filled["experiment"], path.parent


def _with_catalog_variants(path: Path, study: dict, catalog: dict) -> dict:
    """study.variants, each merged over the entry of the same name in the file's `variants` catalog
    (shared files define the paper's variants once; a study names the ones it runs)."""
    if not isinstance(catalog, dict) or not isinstance(study, dict):
        raise ConfigError(f"{path}: variants and study must be mappings")
    chosen = study.get("variants") or {}
    if not isinstance(chosen, dict):
        raise ConfigError(f"{path}: study.variants: expected a mapping of variant names to their keys, got {chosen!r}")
    for name, given in chosen.items():
        if name not in catalog and not (isinstance(given, dict) and "config" in given):
            raise ConfigError(f"study.variants.{name}: not among the file's variants ({', '.join(catalog) or 'none'}) "
                              "and it sets no config; name one of them or give its config")
    return {**study, "variants": {name: merge_mappings(copy.deepcopy(catalog.get(name) or {}), given or {})
                                  for name, given in chosen.items()}} if chosen else study


def fill_inputs(data: dict, inputs: dict[str, str], base: Path) -> tuple[dict, dict[str, list[str]]]:
    """`data` with every `${name}` replaced by the path `inputs.name` ("" when not given: a run that
    needs it says so), and the inputs not given -> the config keys they feed. An input referenced
    but not among `inputs`, or given and missing on disk, is an error naming each of them."""
    used: dict[str, list[str]] = {}

    def fill(node, where: str):
        if isinstance(node, dict):
            return {key: fill(value, f"{where}.{key}" if where else str(key)) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value, f"{where}[{i}]") for i, value in enumerate(node)]
        if isinstance(node, str):
            for name in INPUT_REFERENCE.findall(node):
                used.setdefault(name, []).append(where)
            return INPUT_REFERENCE.sub(lambda m: _input_path(inputs.get(m[1], ""), base), node)
        return node

    filled = fill(data, "")
    problems = []
    for name, places in used.items():
        if name not in inputs:
            problems.append(f"{name} (used by {', '.join(places)}) is not among inputs ({', '.join(inputs) or 'none'})")
        elif inputs[name] and not Path(_input_path(inputs[name], base)).exists():
            problems.append(f"{name} = {inputs[name]} does not exist")
    if problems:
        raise ConfigError("inputs: " + "; ".join(problems) + ". Give each as --set inputs.NAME=PATH")
    unset = {name: sorted({re.sub(r"^(experiment|study\.variants\.[^.]+\.config)\.", "", p) for p in places})
             for name, places in used.items() if not inputs[name]}
    return filled, unset


def _input_path(value: str, base: Path) -> str:
    """An input's path: as given when absolute, else from the working directory or the study's folder."""
    if not value:
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    return str(next((c.resolve() for c in (Path.cwd() / path, base / path) if c.exists()), Path.cwd() / path))


def study_run_config(experiment: dict, base: Path, name: str, strategy: str, seed: int,
                     rejected_model: str = "", overrides: list[str] = (), tau: float | None = None,
                     variant: dict | None = None, detection_only: bool = False) -> ExperimentConfig:
    """One run of a study: the experiment with its variant's keys, its strategy, its seed
    (synthesis, training and a control strategy's head draw), its tau if the study sweeps it, and
    the strategy's own overrides. `detection_only`: its runs end before synthesis (no prompts needed)."""
    data = merge_mappings(copy.deepcopy(experiment), variant or {})
    data.update(name=name, strategy=strategy, run_dir="", control_seed=seed)
    if tau is not None:  # only a sweep touches selection: other studies' fingerprints stay as they were
        data.setdefault("selection", {})["tau"] = tau
    data.setdefault("synthesis", {}).setdefault("sampling", {})["seed"] = seed
    data.setdefault("train", {})["seed"] = seed
    if rejected_model:
        data["rejected_model"] = {**data.get("rejected_model", {}), "path": rejected_model}
    for assignment in overrides:
        apply_override(data, assignment)
    return resolve(from_dict(ExperimentConfig, data), base=base, detection_only=detection_only)
