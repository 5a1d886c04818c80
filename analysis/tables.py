"""The cross-run tables: built from read runs, rendered as markdown, CSV and LaTeX."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from analysis.runs import DASH, HelmetLength, Run, judge_note


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
        if judged := judge_note(r.root for r in runs):
            notes.append(judged)
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
    if judged := judge_note(r.root for r in with_results):
        notes.append(judged)
    base_note = _base_note(with_results, sources)
    if base_note:
        notes.append(base_note)
    return Table("table2", f"Table 2: HELMET per category at length {length}",
                 ["run (model / strategy)"] + categories + ["Overall"], rows, notes)


def _general_table(runs: list[Run]) -> Table | None:
    """Table 5: general benchmarks of each run's trained model, its untrained model in a base row."""
    with_results = [r for r in runs if r.general is not None]
    if not with_results:
        return None
    tasks = list(dict.fromkeys(t for r in with_results for scores in r.general.values() for t in scores))
    sources = _base_sources(with_results, lambda r: bool(r.general["base"]))

    def cells(scores: dict[str, float | None]) -> list[str]:
        return [DASH if scores.get(t) is None else f"{scores[t]:.4g}" for t in tasks]

    rows = _rows_with_base(with_results, sources, lambda r: cells(r.general["base"]),
                           lambda r: cells(r.general["trained"]))
    notes = ["Scores as stages/general/results.json holds them (lm-eval's scale); '-': task not run."]
    base_note = _base_note(with_results, sources)
    if base_note:
        notes.append(base_note)
    return Table("general", "Table 5: general benchmarks, base vs trained", ["run (model / strategy)"] + tasks,
                 rows, notes)


def _top_share(conc: dict) -> float | None:
    value = conc.get("top10_share")
    if value is None:
        value = next((v for k, v in conc.items() if k.startswith("top") and k.endswith("_share")), None)
    return value
