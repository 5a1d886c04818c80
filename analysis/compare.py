"""Cross-run analysis: tables and figures that compare finished RetMask runs, from their files alone.

`write_comparison(run_dirs, out_dir, latex=False)` reads each run directory (nothing is recomputed)
and writes into `out_dir` an `index.md` that links every table (Markdown in the index, plus a CSV and,
with `latex=True`, a booktabs `.tex` beside it) and every PNG figure:

* Table 1: HELMET overall average per context length, one row per run ("model / strategy", from the
  run's config.yaml) and one "model / base" row per distinct model that has base-model HELMET results.
  When no run has HELMET results, Table 1 is the trained model's NIAH accuracy per context length
  (niah.json's "trained" grid, averaged over depths; base rows from the "base" grid), titled as such.
* NIAH overall accuracy: base, ablated, random controls, trained, and the gain trained - base.
* Table 2: HELMET per-category scores at one length: the longest length every run with HELMET
  results has (the longest of any run when they share none).
* General benchmarks, from `stages/general/results.json` ({task: score}); left out when no run has one.
* Figure 4: the sorted retrieval-score distribution of each distinct model, its runs' tau dashed.
* Figure 5: the mean change of retrieval scores after training, masked heads vs other heads, per run
  (grouped bars), plus each run's per-head before/after scatter.
* Concentration (gini, top-10 share of merge_scores' summary) vs gain across runs: table and scatter.
  The gain is HELMET's overall (trained - base, at Table 2's length) when every run has both complete,
  else the NIAH accuracy gain (trained - base); the figure and table say which.
* `comparison.json`: the per-run numbers above and the list of files written (a later call removes
  the files of an earlier one that it no longer writes, and nothing else).

Files read from each run directory (a finished run has manifest.json and report/metrics.json):
    config.yaml, manifest.json, report/metrics.json,
    stages/evaluate/niah.json, stages/evaluate/retrieval_change.json,
    stages/merge_scores/summary.json, stages/select_heads/heads.json (optional),
    stages/helmet_scores/averages.json or stages/helmet/averages.json (optional, HELMET),
    stages/general/results.json (optional, general benchmarks: {"<task>": <score>, ...}).

HELMET averages file (what jobs/helmet.py's `merge` writes to stages/helmet_scores/averages.json;
stages/helmet/averages.json is read when that one is absent). Either one model's results:

    {"<length>": {"categories": {"<category>": AVERAGE, ...},   # HELMET categories: Recall, RAG, ...
                  "overall": AVERAGE,
                  "not_requested": ["<dataset>", ...]},         # optional: datasets left out on purpose
     ...}                                                       # read as the trained model's results

or the same per model: {"base": {"<length>": ...}, "trained": {"<length>": ...}} (either may be absent),

    AVERAGE = {"value": float | null,      # HELMET's 0-100 scale; null when it cannot be computed
               "incomplete": bool,         # true when any result it is made of is missing or failed
               "missing": ["<dataset> at length <n>: <reason> (<path>)", ...]}  # strings, or objects
                                          # {"dataset", "length", "path", "reason"}

as `retmask.helmet.category_averages` computes them (`helmet_averages_json` converts its result).
An incomplete average is never shown as a plain number: "45.1*" when a value is given anyway,
"incomplete" when it is null; "-" marks a length a run was not evaluated at.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from retmask.errors import UserError
from retmask.io import read_json, write_json, write_text

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
    general: dict[str, float | None] | None


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


def helmet_averages_json(averages: dict) -> dict:
    """`retmask.helmet.category_averages`' result in the averages.json shape (one model)."""
    def average(a) -> dict:
        return {"value": a.value, "incomplete": a.incomplete, "missing": [str(m) for m in a.missing]}

    return {str(length): {"categories": {name: average(a) for name, a in entry.categories.items()},
                          "overall": average(entry.overall), "not_requested": list(entry.not_requested)}
            for length, entry in averages.items()}


def _read_general(path: Path) -> dict[str, float | None]:
    data = _json(path)
    if not isinstance(data, dict):
        raise CompareError(f"{path}: expected {{\"<task>\": <score>, ...}}, found {type(data).__name__}")
    return {str(task): _number(score, f"{path}[{task}]") for task, score in data.items()}


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
        cfg = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CompareError(f"{config_path}: not valid YAML ({exc})") from exc
    if not isinstance(cfg, dict):
        raise CompareError(f"{config_path}: expected a mapping (the experiment config)")
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
    helmet_path = next((p for p in (root / "stages/helmet_scores/averages.json",
                                    root / "stages/helmet/averages.json") if p.is_file()), None)
    general_path = root / "stages/general/results.json"
    model = str((cfg.get("model") or {}).get("path") or "")
    tau = (cfg.get("selection") or {}).get("tau")
    return Run(
        root=root, label="", name=str(cfg.get("name") or root.name), model=model, model_label="",
        strategy=str(cfg.get("strategy") or "retrieval-mask"),
        tau=_number(tau, f"{config_path}: selection.tau"), niah=niah, change=change, summary=summary,
        heads=_json(heads_path) if heads_path.is_file() else None,
        helmet=read_helmet_averages(helmet_path) if helmet_path else {}, helmet_path=helmet_path,
        general=_read_general(general_path) if general_path.is_file() else None)


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


# ---------------------------------------------------------------------------------------------- tables


def _latex_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch == "\\":
            out.append(r"\textbackslash{}")
        elif ch in "&%$#_{}":
            out.append("\\" + ch)
        elif ch == "~":
            out.append(r"\textasciitilde{}")
        elif ch == "^":
            out.append(r"\textasciicircum{}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass
class Table:
    stem: str  # file name without extension
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        def cell(text: str) -> str:
            return str(text).replace("|", "\\|")

        lines = ["| " + " | ".join(cell(h) for h in self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buffer.getvalue()

    def latex(self) -> str:
        lines = [f"% {self.title}"] + [f"% {note}" for note in self.notes]
        lines += [r"\begin{tabular}{l" + "r" * (len(self.header) - 1) + "}", r"\toprule",
                  " & ".join(_latex_escape(h) for h in self.header) + r" \\", r"\midrule"]
        lines += [" & ".join(_latex_escape(str(v)) for v in row) + r" \\" for row in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}", ""]
        return "\n".join(lines)


def _f(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _niah_by_length(entry: dict) -> dict[int, float]:
    """Accuracy per context length, the plain mean over the grid's depths."""
    cells: dict[int, list[float]] = {}
    for cell in entry.get("grid") or []:
        cells.setdefault(int(cell["length"]), []).append(float(cell["accuracy"]))
    return {length: sum(v) / len(v) for length, v in sorted(cells.items())}


def _base_sources(runs: list[Run], has_base) -> dict[str, Run]:
    """Per model path: the first run that has base-model results (has_base(run) true)."""
    sources: dict[str, Run] = {}
    for r in runs:
        if r.model not in sources and has_base(r):
            sources[r.model] = r
    return sources


def _rows_with_base(runs: list[Run], sources: dict[str, Run], base_cells, run_cells) -> list[list[str]]:
    """Rows in run order, a "model / base" row before the first run of each model that has one."""
    rows, seen = [], set()
    for r in runs:
        if r.model in sources and r.model not in seen:
            seen.add(r.model)
            rows.append([f"{r.model_label} / base"] + base_cells(sources[r.model]))
        rows.append([r.label] + run_cells(r))
    return rows


def _base_note(runs: list[Run], sources: dict[str, Run]) -> str | None:
    if not sources:
        return None
    return ("base rows: the untrained model, from the first run of that model: "
            + "; ".join(f"{r.model_label} from {r.root}" for r in sources.values()))


def _helmet_table_length(runs: list[Run]) -> int | None:
    """The longest length every run with trained-model HELMET results has, else the longest of any."""
    sets = [set(r.helmet["trained"]) for r in runs if r.helmet.get("trained")]
    if not sets:
        return None
    common = set.intersection(*sets)
    return max(common) if common else max(set.union(*sets))


def _helmet_gain(r: Run, length: int | None) -> float | None:
    """Trained - base HELMET overall at `length`, when both are there and complete."""
    if length is None:
        return None
    trained, base = r.helmet.get("trained", {}).get(length), r.helmet.get("base", {}).get(length)
    if trained and base and trained.overall.complete and base.overall.complete:
        return trained.overall.value - base.overall.value
    return None


def _table1(runs: list[Run]) -> tuple[Table, str]:
    has_helmet = any(r.helmet for r in runs)
    if has_helmet:
        lengths = sorted({n for r in runs for per in r.helmet.values() for n in per})
        sources = _base_sources(runs, lambda r: bool(r.helmet.get("base")))

        def cells(per: dict[int, HelmetLength]) -> list[str]:
            return [per[n].overall.cell() if n in per else DASH for n in lengths]

        rows = _rows_with_base(runs, sources, lambda r: cells(r.helmet["base"]),
                               lambda r: cells(r.helmet.get("trained", {})))
        notes = ["HELMET overall (mean of the category averages, 0-100) per context length.",
                 ("'*': incomplete, averaged over part of the results only; 'incomplete': results missing, "
                 "no average; '-': not evaluated at that length.")]
        without = [r.label for r in runs if not r.helmet.get("trained")]
        if without:
            notes.append("no trained-model HELMET results: " + ", ".join(without))
        subset = sorted({d for r in runs for per in r.helmet.values() for e in per.values() for d in e.not_requested})
        if subset:
            notes.append("HELMET datasets left out on purpose (overall is not HELMET's full one): " + ", ".join(subset))
        title = "Table 1: HELMET overall average by context length"
        kind = "helmet"
    else:
        per_run = {id(r): _niah_by_length(r.niah["trained"]) for r in runs}
        per_base = {id(r): _niah_by_length(r.niah["base"]) for r in runs}
        lengths = sorted({n for d in list(per_run.values()) + list(per_base.values()) for n in d})
        sources = _base_sources(runs, lambda r: bool(per_base[id(r)]))
        rows = _rows_with_base(runs, sources, lambda r: [_f(per_base[id(r)].get(n)) for n in lengths],
                               lambda r: [_f(per_run[id(r)].get(n)) for n in lengths])
        notes = [("No run has HELMET results: NIAH accuracy of the trained model per context length "
                 "(mean over needle depths, 0-1) stands in for Table 1."), "'-': not evaluated at that length."]
        title = "Table 1 (NIAH in place of HELMET): trained-model NIAH accuracy by context length"
        kind = "niah"
    base_note = _base_note(runs, sources)
    if base_note:
        notes.append(base_note)
    return Table("table1", title, ["run (model / strategy)"] + [str(n) for n in lengths], rows, notes), kind


def _niah_table(runs: list[Run]) -> Table:
    rows = []
    for r in runs:
        acc = {name: e.get("accuracy") for name, e in r.niah.items()}
        controls = [v for k, v in acc.items() if k.startswith("random_control") and v is not None]
        base, trained = acc["base"], acc["trained"]
        rows.append([r.label, _f(base), _f(acc.get("ablated")),
                     f"{_f(_mean(controls))} (n={len(controls)})" if controls else DASH, _f(trained),
                     _f(trained - base if None not in (trained, base) else None, signed=True)])
    return Table("niah_overall", "NIAH overall accuracy: base vs trained",
                 ["run (model / strategy)", "base", "ablated", "random controls (mean)", "trained",
                  "gain (trained - base)"], rows,
                 ["Accuracy over all context lengths and depths (0-1), from stages/evaluate/niah.json."])


def _table2(runs: list[Run], length: int) -> Table:
    from retmask.helmet import CATEGORIES

    with_results = [r for r in runs if r.helmet.get("trained")]
    found = list(dict.fromkeys(c for r in runs for per in r.helmet.values() if length in per
                               for c in per[length].categories))
    categories = [c for c in CATEGORIES if c in found] + [c for c in found if c not in CATEGORIES]
    sources = _base_sources(with_results, lambda r: length in r.helmet.get("base", {}))

    def cells(entry: HelmetLength | None) -> list[str]:
        if entry is None:
            return [DASH] * (len(categories) + 1)
        return [entry.categories[c].cell() if c in entry.categories else DASH for c in categories] \
            + [entry.overall.cell()]

    rows = _rows_with_base(with_results, sources, lambda r: cells(r.helmet["base"][length]),
                           lambda r: cells(r.helmet["trained"].get(length)))
    notes = [(f"HELMET category averages (0-100) at context length {length}, the longest length every run with "
             "HELMET results has (or the longest of any when they share none)."),
             ("'*': incomplete, averaged over part of the results only; 'incomplete': results missing, no average; "
             "'-': not evaluated.")]
    base_note = _base_note(with_results, sources)
    if base_note:
        notes.append(base_note)
    return Table("table2", f"Table 2: HELMET per category at length {length}",
                 ["run (model / strategy)"] + categories + ["Overall"], rows, notes)


def _general_table(runs: list[Run]) -> Table | None:
    with_results = [r for r in runs if r.general is not None]
    if not with_results:
        return None
    tasks = list(dict.fromkeys(t for r in with_results for t in r.general))
    rows = [[r.label] + [DASH if r.general.get(t) is None else f"{r.general[t]:.4g}" for t in tasks]
            for r in with_results]
    return Table("general", "General benchmarks", ["run (model / strategy)"] + tasks, rows,
                 ["Scores as stages/general/results.json holds them; '-': task not run."])


def _top_share(conc: dict) -> float | None:
    value = conc.get("top10_share")
    if value is None:
        value = next((v for k, v in conc.items() if k.startswith("top") and k.endswith("_share")), None)
    return value


# ---------------------------------------------------------------------------------------------- writing


class _Writer:
    def __init__(self, out_dir: Path, latex: bool):
        self.out, self.latex = out_dir, latex
        self.files: list[str] = []

    def table(self, table: Table) -> list[str]:
        write_text(self.out / f"{table.stem}.csv", table.csv())
        self.files.append(f"{table.stem}.csv")
        links = f"[CSV]({table.stem}.csv)"
        if self.latex:
            write_text(self.out / f"{table.stem}.tex", table.latex())
            self.files.append(f"{table.stem}.tex")
            links += f" · [LaTeX]({table.stem}.tex)"
        lines = [f"## {table.title}", "", table.markdown(), ""]
        if table.notes:
            lines += [f"{note}  " for note in table.notes] + [""]
        return lines + [links, ""]

    def figure(self, name: str) -> Path:
        self.files.append(name)
        return self.out / name


def _missing_section(runs: list[Run]) -> list[str]:
    lines = []
    for r in runs:
        for model, per in r.helmet.items():
            for length, entry in per.items():
                for where, avg in [("overall", entry.overall)] + list(entry.categories.items()):
                    if avg.incomplete and where != "overall":
                        shown = avg.missing[:8] + ([f"... and {len(avg.missing) - 8} more"]
                                                   if len(avg.missing) > 8 else [])
                        lines.append(f"- {r.label}, {model} model, length {length}, {where}: "
                                     + ("; ".join(shown) or "marked incomplete"))
                if entry.overall.incomplete and not any(a.incomplete for a in entry.categories.values()):
                    lines.append(f"- {r.label}, {model} model, length {length}, overall: "
                                 + ("; ".join(entry.overall.missing[:8]) or "marked incomplete"))
    if not lines:
        return []
    return ["### Incomplete HELMET averages", "", "What each incomplete average lacks:", ""] + lines + [""]


def _figure4(runs: list[Run], w: _Writer) -> list[str]:
    from analysis import compare_figures

    series, rows, notes = [], [], []
    for model in dict.fromkeys(r.model for r in runs):
        of_model = [r for r in runs if r.model == model]
        first = of_model[0]
        scores = [float(score) for _, score in first.summary["ranked"]]
        taus = sorted({r.tau for r in of_model if r.tau is not None})
        series.append({"label": first.model_label, "scores": scores, "taus": taus})
        differ = [r.root.name for r in of_model[1:] if r.summary["ranked"] != first.summary["ranked"]]
        if differ:
            notes.append(f"{first.model_label}: runs {', '.join(differ)} have other scores than {first.root.name} "
                         "(other detection settings); the figure shows those of the first run.")
        conc = first.summary.get("concentration", {})
        rows.append([first.model_label, str(len(scores)), ", ".join(f"{t:g}" for t in taus) or DASH,
                     ", ".join(str(sum(s >= t for s in scores)) for t in taus) or DASH,
                     _f(max(scores) if scores else None), _f(conc.get("gini")), _f(_top_share(conc)),
                     str(first.root)])
    compare_figures.score_distributions(series, w.figure("fig4_score_distribution.png"))
    table = Table("fig4_models", "Retrieval-score distribution per model",
                  ["model", "heads", "tau", "heads at or above tau", "best score", "gini", "top-10 share",
                   "scores from run"], rows, notes)
    lines = ["## Figure 4: retrieval-score distribution per model", "",
             "![retrieval-score distribution per model](fig4_score_distribution.png)", ""]
    return lines + w.table(table)[2:]


def _figure5(runs: list[Run], w: _Writer) -> list[str]:
    from analysis import compare_figures, figures

    rows, bars, images = [], [], []
    for i, r in enumerate(runs):
        c = r.change
        masked_count = sum(1 for v in c.get("per_head", {}).values() if v.get("masked"))
        group = "masked" if (r.heads or {}).get("heads", True) else "retrieval heads (no mask)"
        rows.append([r.label, group, str(masked_count), _f(c["masked_mean_delta"], 4, True),
                     _f(c["other_mean_delta"], 4, True), _f(c.get("mean_before"), 4), _f(c.get("mean_after"), 4)])
        bars.append((r.label, c["masked_mean_delta"], c["other_mean_delta"]))
        if c.get("per_head"):
            name = f"fig5_run{i + 1}_before_after.png"
            figures.retrieval_before_after(c["per_head"], w.figure(name))
            images.append(f"![{r.label}: before vs after]({name})")
    compare_figures.delta_bars(bars, w.figure("fig5_retrieval_change.png"))
    table = Table("fig5_retrieval_change", "Retrieval scores before vs after training",
                  ["run (model / strategy)", "head group", "heads in group", "group mean change",
                   "other heads mean change", "all heads mean before", "all heads mean after"], rows,
                  [("From stages/evaluate/retrieval_change.json. Without a mask (smaller-model, sft) the group is "
                   "the retrieval heads.")])
    lines = ["## Figure 5: retrieval scores before vs after training, masked vs other heads", "",
             "![mean change, masked vs other heads](fig5_retrieval_change.png)", ""]
    lines += w.table(table)[2:]
    if images:
        lines += ["Per head, per run (masked heads in red):", "", " ".join(images), ""]
    return lines


def _concentration(runs: list[Run], helmet_length: int | None, w: _Writer) -> tuple[list[str], list[dict]]:
    from analysis import compare_figures

    records, rows = [], []
    for r in runs:
        conc = r.summary.get("concentration", {})
        base, trained = r.niah["base"].get("accuracy"), r.niah["trained"].get("accuracy")
        niah_gain = trained - base if None not in (trained, base) else None
        records.append({"label": r.label, "run_dir": str(r.root), "name": r.name, "model": r.model,
                        "strategy": r.strategy, "tau": r.tau, "niah_base": base, "niah_trained": trained,
                        "niah_gain": niah_gain, "helmet_length": helmet_length,
                        "helmet_gain": _helmet_gain(r, helmet_length), "gini": conc.get("gini"),
                        "top10_share": _top_share(conc), "normalized_entropy": conc.get("normalized_entropy"),
                        "heads_at_or_above_tau": conc.get("heads_at_or_above_tau"), "heads": conc.get("heads")})
    use_helmet = bool(records) and all(rec["helmet_gain"] is not None for rec in records)
    gain_key = "helmet_gain" if use_helmet else "niah_gain"
    gain_label = (f"HELMET overall gain at {helmet_length} (trained - base)" if use_helmet
                  else "NIAH accuracy gain (trained - base)")
    header = ["run (model / strategy)", "gini", "top-10 share", "normalized entropy", "heads at or above tau",
              "NIAH gain"]
    if helmet_length is not None:
        header.append(f"HELMET gain at {helmet_length}")
    for rec in records:
        row = [rec["label"], _f(rec["gini"]), _f(rec["top10_share"]), _f(rec["normalized_entropy"]),
               DASH if rec["heads_at_or_above_tau"] is None else str(rec["heads_at_or_above_tau"]),
               _f(rec["niah_gain"], signed=True)]
        if helmet_length is not None:
            row.append(_f(rec["helmet_gain"], 1, True) if rec["helmet_gain"] is not None else "incomplete or no base")
        rows.append(row)
    points = [{"label": rec["label"], "gini": rec["gini"], "top10_share": rec["top10_share"], "gain": rec[gain_key]}
              for rec in records if None not in (rec["gini"], rec["top10_share"], rec[gain_key])]
    lines = ["## Concentration of retrieval scores vs gain", ""]
    if points:
        compare_figures.concentration_vs_gain(points, gain_label, w.figure("concentration_vs_gain.png"))
        lines += [f"Gain on the y axis: {gain_label}.", "", "![concentration vs gain](concentration_vs_gain.png)", ""]
    notes = ["Concentration from each run's stages/merge_scores/summary.json (heads at or above its own tau)."]
    if helmet_length is not None and not use_helmet:
        notes.append("The figure uses the NIAH gain: not every run has complete base and trained HELMET results "
                     f"at {helmet_length}.")
    table = Table("concentration_vs_gain", "Concentration vs gain", header, rows, notes)
    return lines + w.table(table)[2:], records


def _runs_table(runs: list[Run]) -> Table:
    rows = []
    for r in runs:
        heads = (r.heads or {}).get("heads")
        rows.append([r.label, r.name, r.strategy, r.model or DASH, DASH if r.tau is None else f"{r.tau:g}",
                     DASH if heads is None else str(len(heads)),
                     "yes" if r.helmet.get("trained") else "no", "yes" if r.general is not None else "no",
                     str(r.root)])
    return Table("runs", "Runs", ["run (model / strategy)", "name", "strategy", "model path", "tau",
                                  "heads masked", "HELMET", "general", "run directory"], rows)


def write_comparison(run_dirs: list[Path], out_dir: Path, latex: bool = False) -> Path:
    """Compare finished runs into `out_dir` (index.md, CSV, optional LaTeX, PNG); returns index.md's path."""
    if not run_dirs:
        raise CompareError("no run directories given; pass the directories of one or more finished runs")
    runs = [read_run(p) for p in run_dirs]
    roots = [r.root for r in runs]
    twice = sorted({str(p) for p in roots if roots.count(p) > 1})
    if twice:
        raise CompareError(f"run directories given more than once: {', '.join(twice)}")
    out_dir = Path(out_dir).absolute()
    for r in runs:
        if out_dir in (r.root, r.root / "report") or out_dir.is_relative_to(r.root / "stages"):
            raise CompareError(f"output directory {out_dir} is inside run {r.root}'s own files; choose another")
    _label_runs(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    w = _Writer(out_dir, latex)

    table1, kind = _table1(runs)
    helmet_length = _helmet_table_length(runs)
    lines = [f"# RetMask: comparison of {len(runs)} run{'s' * (len(runs) != 1)}", ""]
    lines += w.table(_runs_table(runs))
    lines += w.table(table1)
    lines += _missing_section(runs)
    lines += w.table(_niah_table(runs))
    if helmet_length is not None:
        lines += w.table(_table2(runs, helmet_length))
    general = _general_table(runs)
    if general is not None:
        lines += w.table(general)
    lines += _figure4(runs, w)
    lines += _figure5(runs, w)
    conc_lines, records = _concentration(runs, helmet_length, w)
    lines += conc_lines

    previous = out_dir / "comparison.json"
    old_files = []
    if previous.is_file():
        try:
            old_files = list(read_json(previous).get("files", []))
        except (OSError, ValueError, AttributeError):
            old_files = []
    write_json(previous, {"runs": records, "table1": kind, "helmet_length": helmet_length,
                          "files": sorted(w.files + ["index.md"])})
    for name in set(old_files) - set(w.files) - {"index.md", "comparison.json"}:
        stale = out_dir / str(name)
        if "/" not in str(name) and stale.is_file():  # only the earlier call's own files, never anything else
            stale.unlink()
    index = out_dir / "index.md"
    write_text(index, "\n".join(lines).rstrip() + "\n\nNumbers per run: [comparison.json](comparison.json)\n")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.compare", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="finished run directories")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--latex", action="store_true", help="also write booktabs .tex tables")
    args = parser.parse_args(argv)
    try:
        print(write_comparison(args.run_dirs, args.out, args.latex))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
