"""Choosing tau by pilot runs (paper Appendix A, Table 6): each tau's RetMask runs scored on a proxy
metric, and the tau with the highest mean over seeds (ties: the smaller tau, the smaller mask).

Read from run directories alone: the heads each run masked and its proxy metric, as it wrote them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from retmask.io import read_json

NIAH_METRICS = {"niah_rouge_recall": "rouge_recall", "niah_accuracy": "accuracy"}  # tau_metric -> record metric


@dataclass
class TauRow:
    tau: float
    heads: dict[int, int]  # seed -> heads masked (selection does not depend on the seed: one value)
    values: dict[int, float]  # seed -> proxy metric of the trained model
    unscored: dict[int, str] = field(default_factory=dict)  # seed -> why a run that trained has no proxy value
    chosen: bool = False

    @property
    def mean(self) -> float | None:
        return sum(self.values.values()) / len(self.values) if self.values else None

    def to_dict(self) -> dict:
        return {"tau": self.tau, "heads": self.heads, "values": self.values, "unscored": self.unscored,
                "mean": self.mean, "chosen": self.chosen}


def finished(run: Path) -> bool:
    return (run / "stages/evaluate/niah.json").is_file()


HELMET_FILES = {"helmet": "averages.json", "helmet_rouge": "rouge_averages.json"}  # tau_metric -> helmet_scores file


class Unscored(ValueError):
    """A run that trained but has no proxy value (yet): its HELMET stage failed or has not run."""


def _helmet_value(run: Path, metric: str, categories: list[str]) -> float:
    """The trained model's HELMET average over `categories` (helmet_rouge: ROUGE in place of the
    GPT-4 judge), mean over the run's HELMET lengths."""
    path = run / "stages/helmet_scores" / HELMET_FILES[metric]
    if not path.is_file():
        # the study's checks made sure HELMET runs these categories: it has not finished (failed, or still to run)
        raise Unscored(f"no {path.relative_to(run)}: its HELMET stages have not finished (study.tau_metric={metric} "
                       "reads them)")
    per_model = read_json(path)
    if "trained" not in per_model:
        raise Unscored(f"{path.relative_to(run)} has no trained model's scores (helmet.models must include trained)")
    per_length = []
    for length, entry in per_model["trained"].items():
        values = []
        for category in categories:
            average = entry["categories"].get(category)
            if average is None or average["value"] is None:
                reason = "; ".join(average["missing"]) if average else "not run (helmet.configs)"
                raise Unscored(f"HELMET {category} at length {length} has no score ({reason}); "
                               "study.tau_helmet_categories must name categories every run scored")
            values.append(average["value"])
        per_length.append(sum(values) / len(values))
    return sum(per_length) / len(per_length)


def proxy_value(run: Path, metric: str, long_from: int, helmet_categories: list[str]) -> float:
    """One finished run's proxy metric: the trained model's NIAH recall or accuracy at lengths >=
    long_from (the lengths beyond training, where RetMask should help), or its HELMET average."""
    if metric in HELMET_FILES:
        return _helmet_value(run, metric, helmet_categories)
    from analysis.study import band

    entries = read_json(run / "stages/evaluate/niah.json")
    trained = next(e for e in entries if e["model"] == "trained")
    return band(trained["records"], NIAH_METRICS[metric], long_from, True)


def tau_table(runs: list[dict], metric: str, long_from: int, helmet_categories: list[str]) -> list[TauRow]:
    """One row per tau of the plan's runs ({tau, seed, run_dir}), in tau order, the chosen one marked.
    Unfinished runs are left out, and so are runs without a proxy value, with the reason; a tau none
    of whose runs has a value cannot be chosen."""
    rows: dict[float, TauRow] = {}
    for entry in sorted(runs, key=lambda e: (e["tau"], e["seed"])):
        row = rows.setdefault(entry["tau"], TauRow(entry["tau"], {}, {}))
        run = Path(entry["run_dir"])
        if not finished(run):
            continue
        row.heads[entry["seed"]] = len(read_json(run / "stages/select_heads/heads.json")["heads"])
        try:
            row.values[entry["seed"]] = proxy_value(run, metric, long_from, helmet_categories)
        except Unscored as why:
            row.unscored[entry["seed"]] = str(why)
    scored = [row for row in rows.values() if row.values]
    if scored:
        max(scored, key=lambda row: (row.mean, -row.tau)).chosen = True  # ties: the smaller tau
    return list(rows.values())


def chosen_tau(rows: list[TauRow]) -> float | None:
    return next((row.tau for row in rows if row.chosen), None)


def tau_markdown(rows: list[TauRow], metric: str, seeds: list[int]) -> list[str]:
    """Table 6 in miniature: tau, heads masked, the proxy's mean and per-seed values, the chosen tau;
    then why each run that trained has no value."""
    header = ["tau", "heads masked", f"{metric} mean", *[f"seed {seed}" for seed in seeds], "chosen"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        heads = "/".join(str(n) for n in sorted(set(row.heads.values()))) or "not run"
        mean = f"{row.mean:.3f}" if row.values else "not run"
        cells = [f"{row.values[seed]:.3f}" if seed in row.values else "not scored" if seed in row.unscored
                 else "not run" for seed in seeds]
        lines.append("| " + " | ".join([f"{row.tau:g}", heads, mean, *cells, "chosen" if row.chosen else ""]) + " |")
    unscored = [f"- tau {row.tau:g} seed {seed}: {why}" for row in rows for seed, why in sorted(row.unscored.items())]
    return lines + (["", "Not scored (left out of the means):", *unscored] if unscored else [])
