"""A study: a strategy x seed grid over one experiment (`retmask study`), as typed config.

A study file is an experiment config plus a `study` section; each run is the experiment with its
strategy, its seed (and, in a tau sweep, its selection.tau) and the strategy's overrides applied.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from retmask.config import ExperimentConfig, resolve
from retmask.toy.recipe import ToyModelConfig
from retmask.typed_yaml import ConfigError, apply_override, check_choice, from_dict, read_yaml_mapping


TAU_METRICS = ("niah_rouge_recall", "niah_accuracy", "helmet", "helmet_rouge")


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
    # Default: the categories the helmet stage scores by itself under either metric (Cite needs
    # eval_alce.py; LongQA and Summ need a judge under `helmet`, ROUGE under `helmet_rouge`).
    tau_helmet_categories: list[str] = field(default_factory=lambda: ["Recall", "RAG", "Re-rank", "ICL"])

    def validate(self, key: str) -> None:
        from retmask.strategies import STRATEGIES

        for name in self.strategies:
            check_choice(key, "strategies[]", name, tuple(STRATEGIES))
        if not self.seeds:
            raise ConfigError(f"{key}.seeds: give at least one seed (three or more for intervals)")
        if overlap := set(self.seeds) & set(self.development_seeds):
            raise ConfigError(f"{key}: seeds {sorted(overlap)} are also development seeds; the report's seeds must "
                              "be others than the ones hyper-parameters were chosen on")
        check_choice(key, "metric", self.metric, ("rouge_recall", "accuracy"))
        if self.processes < 0:
            raise ConfigError(f"{key}.processes must be >= 0 (0: one per CPU core), got {self.processes}")
        for name in self.overrides:
            check_choice(key, "overrides", name, tuple(self.strategies))
        self._validate_taus(key)

    def _validate_taus(self, key: str) -> None:
        from retmask.helmet import CATEGORIES

        outside = [tau for tau in self.taus if isinstance(tau, bool) or not 0 < tau <= 1]
        repeated = sorted({tau for tau in self.taus if self.taus.count(tau) > 1})
        if outside or repeated:
            problem = f"{outside} outside (0, 1]" if outside else f"{repeated} given twice"
            raise ConfigError(f"{key}.taus: {problem}; give distinct retrieval-score thresholds in (0, 1], "
                              "e.g. [0.05, 0.1] (empty: the experiment's selection.tau alone)")
        if self.taus and "retrieval-mask" not in self.strategies:
            raise ConfigError(f"{key}.taus: tau is chosen on retrieval-mask runs; add retrieval-mask to "
                              f"{key}.strategies ({self.strategies})")
        check_choice(key, "tau_metric", self.tau_metric, TAU_METRICS)
        for category in self.tau_helmet_categories:
            check_choice(key, "tau_helmet_categories[]", category, tuple(CATEGORIES))


def load_study(path: str | Path, overrides: list[str] = ()) -> tuple[StudyConfig, dict, Path]:
    """A study file: an experiment config with a `study` section. Returns the study, the
    experiment's mapping (each run applies its strategy and seed to it, then validates it), and
    the folder relative paths are read from."""
    path = Path(path)
    data = read_yaml_mapping(path, "study file")
    for assignment in overrides:
        apply_override(data, assignment)
    if "study" not in data:
        raise ConfigError(f"{path}: no `study` section; a study file is an experiment config plus a study section "
                          "(strategies, seeds, development_seeds, ...)")
    study = from_dict(StudyConfig, data.pop("study") or {}, key="study")
    study.validate("study")
    return study, data, path.parent


def study_run_config(experiment: dict, base: Path, name: str, strategy: str, seed: int,
                     rejected_model: str = "", overrides: list[str] = (), tau: float | None = None) -> ExperimentConfig:
    """One run of a study: the experiment with its strategy, its seed (synthesis, training and a
    control strategy's head draw), its tau if the study sweeps it, and the strategy's own overrides."""
    import copy

    data = copy.deepcopy(experiment)
    data.update(name=name, strategy=strategy, run_dir="", control_seed=seed)
    if tau is not None:  # only a sweep touches selection: other studies' fingerprints stay as they were
        data.setdefault("selection", {})["tau"] = tau
    data.setdefault("synthesis", {}).setdefault("sampling", {})["seed"] = seed
    data.setdefault("train", {})["seed"] = seed
    if rejected_model:
        data["rejected_model"] = {**data.get("rejected_model", {}), "path": rejected_model}
    for assignment in overrides:
        apply_override(data, assignment)
    return resolve(from_dict(ExperimentConfig, data), base=base)
