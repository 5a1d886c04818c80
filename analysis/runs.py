"""Reading finished run directories for cross-run analysis: what each run's files say, checked.

The averages.json shapes are described in analysis/compare.py."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from retmask.config import ConfigError, read_saved_config
from retmask.errors import UserError
from retmask.io import read_json

DASH = "-"


class CompareError(UserError):
    pass


class NotARunError(CompareError):
    """The path is not a finished run directory."""


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class Avg:
    value: float | None
    incomplete: bool = False
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.value is not None and not self.incomplete

    def cell(self, digits: int = 1) -> str:
        if self.value is None:
            return "incomplete" if self.incomplete or self.missing else DASH
        return f"{self.value:.{digits}f}" + ("*" if self.incomplete else "")


@dataclass
class HelmetLength:
    categories: dict[str, Avg]
    overall: Avg
    not_requested: list[str] = field(default_factory=list)


@dataclass
class Run:
    root: Path
    label: str
    name: str
    model: str  # model.path of the config
    model_label: str
    strategy: str
    tau: float | None
    niah: dict[str, dict]  # model name ("base", "trained", ...) -> niah.json entry
    change: dict  # retrieval_change.json
    summary: dict  # merge_scores/summary.json
    heads: dict | None  # select_heads/heads.json
    helmet: dict[str, dict[int, HelmetLength]]  # "base" / "trained" -> length -> averages
    helmet_path: Path | None
    # the same with ROUGE in place of the GPT-4 judge (rouge_averages.json): the paper's Tables 6, 9, 10
    helmet_rouge: dict[str, dict[int, HelmetLength]]
    general: dict[str, dict[str, float | None]] | None  # "base" / "trained" -> task -> score


def _need(root: Path, relative: str, what: str) -> Path:
    path = root / relative
    if not path.is_file():
        raise NotARunError(f"{root}: not a finished run directory: {relative} is missing ({what})")
    return path


def _json(path: Path):
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise CompareError(f"{path}: cannot read it as JSON ({exc})") from exc


def _number(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CompareError(f"{where}: expected a finite number or null, found {value!r}")
    return float(value)


def _missing_text(entry) -> str:
    if isinstance(entry, dict):
        return (f"{entry.get('dataset', '?')} at length {entry.get('length', '?')}: "
                f"{entry.get('reason', 'missing')} ({entry.get('path', '?')})")
    return str(entry)


_AVG_SHAPE = '{"value": float|null, "incomplete": bool, "missing": [...]}'


def _avg(data, where: str) -> Avg:
    if not isinstance(data, dict) or "value" not in data:
        raise CompareError(f"{where}: expected an average {_AVG_SHAPE}, found {data!r}")
    missing = data.get("missing") or []
    if not isinstance(missing, list):
        raise CompareError(f"{where}.missing: expected a list, found {missing!r}")
    incomplete = data.get("incomplete", data["value"] is None)
    if not isinstance(incomplete, bool):
        raise CompareError(f"{where}.incomplete: expected true or false, found {incomplete!r}")
    return Avg(_number(data["value"], f"{where}.value"), incomplete, [_missing_text(m) for m in missing])


def _per_length(data, where: str) -> dict[int, HelmetLength]:
    if not isinstance(data, dict):
        raise CompareError(f"{where}: expected {{length: {{categories, overall}}}}, found {type(data).__name__}")
    out: dict[int, HelmetLength] = {}
    for key, entry in data.items():
        try:
            length = int(key)
        except (TypeError, ValueError):
            raise CompareError(f"{where}: key {key!r} is not a context length; expected e.g. \"8192\"") from None
        if not isinstance(entry, dict) or "overall" not in entry:
            raise CompareError(f"{where}[{key}]: expected {{\"categories\": {{...}}, \"overall\": {_AVG_SHAPE}}}")
        categories = entry.get("categories") or {}
        if not isinstance(categories, dict):
            raise CompareError(f"{where}[{key}].categories: expected an object of category averages")
        out[length] = HelmetLength({c: _avg(a, f"{where}[{key}].categories[{c}]") for c, a in categories.items()},
                                   _avg(entry["overall"], f"{where}[{key}].overall"),
                                   list(entry.get("not_requested") or []))
    return dict(sorted(out.items()))


def read_helmet_averages(path: str | Path) -> dict[str, dict[int, HelmetLength]]:
    """A HELMET averages file (shape in the module docstring) as {"base"|"trained": {length: HelmetLength}}."""
    path = Path(path)
    data = _json(path)
    if not isinstance(data, dict):
        raise CompareError(f"{path}: expected a JSON object keyed by length or by model, "
                           f"found {type(data).__name__}")
    if data and set(data) <= {"base", "trained"}:
        return {model: _per_length(per, f"{path}[{model}]") for model, per in data.items()}
    return {"trained": _per_length(data, str(path))}


GENERAL_MODELS = ("base", "trained")
_GENERAL_SHAPE = '{"base": {"<task>": <score>, ...}, "trained": {"<task>": <score>, ...}}'


def read_general(path: Path) -> dict[str, dict[str, float | None]]:
    """The general stage's results.json: per model ("base", "trained"), the score of each task."""
    data = _json(path)
    if not isinstance(data, dict) or set(data) != set(GENERAL_MODELS) or not all(
            isinstance(scores, dict) for scores in data.values()):
        raise CompareError(f"{path}: expected {_GENERAL_SHAPE}, found {json.dumps(data)[:200]}")
    return {model: {str(task): _number(score, f"{path}[{model}][{task}]") for task, score in data[model].items()}
            for model in GENERAL_MODELS}


def read_run(path: str | Path) -> Run:
    """One finished run directory's files; NotARunError naming the path and what is missing otherwise."""
    root = Path(path).absolute()
    if not root.is_dir():
        raise NotARunError(f"{root}: not a finished run directory: "
                           f"{'it is a file' if root.exists() else 'it does not exist'}")
    _need(root, "manifest.json", "written by the pipeline for every run")
    _need(root, "report/metrics.json", "written by the report stage, the last stage of a run")
    config_path = _need(root, "config.yaml", "the resolved experiment config")
    try:
        cfg = read_saved_config(config_path)
    except ConfigError as exc:
        raise CompareError(str(exc)) from exc
    niah_path = _need(root, "stages/evaluate/niah.json", "the evaluate stage's NIAH results")
    niah_list = _json(niah_path)
    if not isinstance(niah_list, list) or not all(isinstance(e, dict) and "model" in e for e in niah_list):
        raise CompareError(f"{niah_path}: expected a list of {{model, accuracy, grid, ...}}")
    niah = {e["model"]: e for e in niah_list}
    for model in ("base", "trained"):
        if model not in niah:
            raise CompareError(f"{niah_path}: no {model!r} entry (found {', '.join(niah) or 'none'})")
    change = _json(_need(root, "stages/evaluate/retrieval_change.json", "the evaluate stage's score change"))
    summary = _json(_need(root, "stages/merge_scores/summary.json", "the merge_scores stage's ranked scores"))
    heads_path = root / "stages/select_heads/heads.json"
    helmet_path = root / "stages/helmet_scores/averages.json"
    helmet_path = helmet_path if helmet_path.is_file() else None
    rouge_path = root / "stages/helmet_scores/rouge_averages.json"
    general_path = root / "stages/general/results.json"
    return Run(
        root=root, label="", name=cfg.name, model=cfg.model.path, model_label="", strategy=cfg.strategy,
        tau=cfg.selection.tau, niah=niah, change=change, summary=summary,
        heads=_json(heads_path) if heads_path.is_file() else None,
        helmet=read_helmet_averages(helmet_path) if helmet_path else {}, helmet_path=helmet_path,
        helmet_rouge=read_helmet_averages(rouge_path) if rouge_path.is_file() else {},
        general=read_general(general_path) if general_path.is_file() else None)


def _label_runs(runs: list[Run]) -> None:
    models = list(dict.fromkeys(r.model for r in runs))
    short = {m: Path(m.rstrip("/")).name or m or "(no model path)" for m in models}
    clash = {s for s in short.values() if list(short.values()).count(s) > 1}
    for r in runs:
        r.model_label = r.model if short[r.model] in clash else short[r.model]
        r.label = f"{r.model_label} / {r.strategy}"
    for attempt in (lambda r, i: f"{r.label} ({r.root.name})", lambda r, i: f"{r.label} [{i + 1}]"):
        labels = [r.label for r in runs]
        for i, r in enumerate(runs):
            if labels.count(r.label) > 1:
                r.label = attempt(r, i)


def judge_note(run_dirs) -> str | None:
    """A line naming who judged HELMET's LongQA and Summ in these runs (helmet_scores/judge.json)
    when it is not the paper's judge; None when it is, or nobody judged (those cells say incomplete)."""
    from retmask.evaluation_config import PAPER_JUDGE

    judges = set()
    for root in run_dirs:
        path = Path(root) / "stages/helmet_scores/judge.json"
        if path.is_file():
            record = _json(path)
            if record.get("judge") and not record.get("papers"):
                judges.add(record["judge"])
    if not judges:
        return None
    return (f"LongQA and Summ (and so every HELMET average) judged by {', '.join(sorted(judges))}, not the paper's "
            f"{PAPER_JUDGE}: comparable among these runs, not with the paper's numbers.")

