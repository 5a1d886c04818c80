"""The paper's tables in the paper's layout, our numbers beside its own: each cell of a table
(retmask/paper_tables.py) read from the study's run directories, the mean over seeds, then the
paper's value and the difference.

Read from `study.json` and the runs' files alone. A cell whose runs have not finished, whose
HELMET average is incomplete, or whose benchmark no run evaluates says so instead of a number.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from analysis.runs import judge_note, read_general, read_helmet_averages
from retmask.io import read_json, write_text
from retmask.paper_tables import AVERAGE, BASE, GENERAL_BENCHMARKS, PAPER_TABLES, Cell, PaperTable, cell

HELMET_FILES = {"helmet": "averages.json", "helmet_rouge": "rouge_averages.json", "helmet_gain": "averages.json"}
PAPER = "paper"


@dataclass
class Value:
    """Our number for one cell (mean over seeds), or why there is none."""
    value: float | None
    seeds: int = 0
    why: str = ""  # when value is None: not run, incomplete (what is missing), no such task...

    def text(self, digits: int) -> str:
        if self.value is None:
            return self.why
        return f"{self.value:.{digits}f}" + (f" (n={self.seeds})" if self.seeds > 1 else "")


class StudyRuns:
    """The study's plan entries, found by variant, strategy and tau."""

    def __init__(self, study_dir: Path):
        self.plan = read_json(Path(study_dir) / "study.json")
        self.entries = self.plan["runs"]

    def trained(self, cell: Cell) -> list[Path]:
        return [Path(e["run_dir"]) for e in self.entries if e.get("variant") == cell.variant
                and e["strategy"] == cell.strategy and (cell.tau is None or e.get("tau") == cell.tau)]

    def any_of(self, variant: str) -> list[Path]:
        """Every run of the variant: an untrained model's numbers are the same in each."""
        return [Path(e["run_dir"]) for e in self.entries if e.get("variant") == variant]


def _helmet(run: Path, source: str, model: str, length: int, column: str) -> tuple[float | None, str]:
    path = run / "stages/helmet_scores" / HELMET_FILES[source]
    if not path.is_file():
        return None, "not run"
    per_length = read_helmet_averages(path).get(model, {}).get(length)
    if per_length is None:
        return None, f"no {length}"
    average = per_length.overall if column == AVERAGE else per_length.categories.get(column)
    if average is None:
        return None, f"no {column}"
    if average.value is None or average.incomplete:
        missing = sorted({m.split(" at length")[0] for m in average.missing})
        return None, "incomplete" + (f": {', '.join(missing)}" if missing else "")
    return average.value, ""


def _general(run: Path, model: str, column: str) -> tuple[float | None, str]:
    path = run / "stages/general/results.json"
    if not path.is_file():
        return None, "not run"
    scores = read_general(path)[model]
    task = next((t for t in scores if t.startswith(GENERAL_BENCHMARKS[column])), None)
    if task is None:  # a task left out says why (metrics.json), e.g. code execution not allowed
        metrics = path.parent / "metrics.json"
        reasons = read_json(metrics) if metrics.is_file() else {}
        why = next((r for t, r in reasons.items() if t.startswith(GENERAL_BENCHMARKS[column])
                    and r.startswith("not run")), None)
        return None, why or "no such task"
    return scores[task], ""


def _pairs(run: Path, column: str) -> tuple[float | None, str]:
    path = run / "stages/pairs/statistics.json"
    return (read_json(path)[column], "") if path.is_file() else (None, "not run")


def _retrieval_scores(run: Path, column: str) -> tuple[float | None, str]:
    path = run / "stages/merge_scores/summary.json"
    if not path.is_file():
        return None, "not run"
    summary = read_json(path)
    concentration = summary.get("concentration", {})
    values = {"heads": concentration.get("heads_at_or_above_tau"), "gini": concentration.get("gini"),
              "top10_share": concentration.get("top10_share"),
              "top_score": summary["ranked"][0][1] if summary.get("ranked") else None}
    return values[column], ""


def _retrieval_change(run: Path, column: str) -> tuple[float | None, str]:
    path = run / "stages/evaluate/retrieval_change.json"
    return (read_json(path)[column], "") if path.is_file() else (None, "not run")


def _one_run(table: PaperTable, run: Path, cell: Cell) -> tuple[float | None, str]:
    """The cell's value in one run: a trained model's, or (strategy base) the untrained model's."""
    model = "base" if cell.strategy == BASE else "trained"
    if table.source in ("helmet", "helmet_rouge"):
        return _helmet(run, table.source, model, cell.length, cell.column)
    if table.source == "helmet_gain":
        trained, why = _helmet(run, table.source, "trained", cell.length, cell.column)
        base, why_base = _helmet(run, table.source, "base", cell.length, cell.column)
        return (trained - base, "") if None not in (trained, base) else (None, why or why_base)
    if table.source == "general":
        return _general(run, model, cell.column)
    if table.source == "pairs":
        return _pairs(run, cell.column)
    if table.source == "retrieval_scores":
        return _retrieval_scores(run, cell.column)
    return _retrieval_change(run, cell.column)


def cell_value(table: PaperTable, runs: StudyRuns, cell: Cell) -> Value:
    """Mean over the cell's runs (seeds); the untrained model's from the first run that has it."""
    untrained = cell.strategy in (None, BASE) and table.source != "helmet_gain"
    candidates = runs.any_of(cell.variant) if untrained else runs.trained(cell)
    if not candidates:
        return Value(None, why="not in the study")
    values, reasons = [], []
    for run in candidates:
        value, why = _one_run(table, run, cell)
        if value is None:
            reasons.append(why)
        else:
            values.append(value)
            if untrained:
                return Value(value, 1)
    if not values or (reasons and not untrained):
        return Value(None, why=reasons[0] if reasons else "not run")
    return Value(sum(values) / len(values), len(values))


@dataclass
class RenderedTable:
    table: PaperTable
    ours: list[list[Value]]

    def markdown(self) -> list[str]:
        t = self.table
        header = ["", *[c.label for c in t.columns]]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row, values, paper in zip(t.rows, self.ours, t.paper):
            cells = []
            for column, value, published in zip(t.columns, values, paper):
                digits = t.digits if column.digits is None else column.digits
                text = value.text(digits)
                if published is not None:
                    difference = f", {value.value - published:+.{digits}f}" if value.value is not None else ""
                    text += f" ({PAPER} {published:.{digits}f}{difference})"
                cells.append(text)
            lines.append("| " + " | ".join([row.label, *cells]) + " |")
        return lines

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["row", "column", "ours", "seeds", "why_none", "paper", "difference"])
        for row, values, paper in zip(self.table.rows, self.ours, self.table.paper):
            for column, value, published in zip(self.table.columns, values, paper):
                difference = value.value - published if None not in (value.value, published) else None
                writer.writerow([row.label, column.label, value.value, value.seeds, value.why, published, difference])
        return buffer.getvalue()

    def to_dict(self) -> dict:
        return {"title": self.table.title, "columns": [c.label for c in self.table.columns],
                "rows": {row.label: {c.label: {"ours": v.value, "seeds": v.seeds, "why": v.why, "paper": p}
                                     for c, v, p in zip(self.table.columns, values, paper)}
                         for row, values, paper in zip(self.table.rows, self.ours, self.table.paper)}}


def render(table: PaperTable, runs: StudyRuns) -> RenderedTable:
    return RenderedTable(table, [[cell_value(table, runs, cell(row, column)) for column in table.columns]
                                 for row in table.rows])


def paper_section(study_dir: Path, out: Path) -> tuple[list[str], dict]:
    """The markdown of every paper table the study names (each also as <key>.csv in `out`), and
    their numbers; nothing when it names none."""
    runs = StudyRuns(study_dir)
    keys = runs.plan.get("paper_tables") or []
    if not keys:
        return [], {}
    lines = ["## The paper's tables, reproduced", "",
             f"Each cell: our number (mean over seeds {runs.plan['seeds']}), then ({PAPER} its number, our difference). "
             "'incomplete': a HELMET average with results missing (named); 'not run': the run has not written it.", ""]
    numbers = {}
    for key in keys:
        rendered = render(PAPER_TABLES[key], runs)
        write_text(out / f"{key}.csv", rendered.csv())
        lines += [f"### {rendered.table.title}", "", *rendered.markdown(), ""]
        if rendered.table.note:
            lines += [rendered.table.note, ""]
        if rendered.table.source in ("helmet", "helmet_gain") and (note := judge_note(
                Path(e["run_dir"]) for e in runs.entries)):
            lines += [note, ""]
        numbers[key] = rendered.to_dict()
    return lines, numbers
