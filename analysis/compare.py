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
* Table 5: general benchmarks, from `stages/general/results.json`: a "model / base" row per distinct model
  (the untrained model, from its first run) and each run's trained model; left out when no run has one.
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
    stages/general/results.json (optional, general benchmarks:
        {"base": {"<task>": <score>, ...}, "trained": {"<task>": <score>, ...}}).

HELMET averages file (what jobs/stages/helmet.py's `merge` writes to stages/helmet_scores/averages.json;
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

as `retmask.helmet.category_averages` computes them (`retmask.helmet.averages_json` converts its result).
An incomplete average is never shown as a plain number: "45.1*" when a value is given anyway,
"incomplete" when it is null; "-" marks a length a run was not evaluated at.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from analysis.runs import (
    DASH,
    CompareError,
    Run,
    _label_runs,
    read_run,
)
from analysis.tables import (
    Table,
    _f,
    _general_table,
    _helmet_gain,
    _helmet_table_length,
    _niah_table,
    _table1,
    _table2,
    _top_share,
)
from retmask.errors import UserError
from retmask.io import read_json, write_json, write_text

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
        # evaluate names the group; runs from before it did: masked heads, else the retrieval heads
        group = c.get("group") or ("masked" if (r.heads or {}).get("heads", True) else "retrieval heads (no mask)")
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


ROUGE_TITLE = " (ROUGE in place of the GPT-4 judge, as the paper's Tables 6, 9 and 10)"


def _rouge_tables(runs: list[Run], w: _Writer) -> list[str]:
    """Tables 1 and 2 again with ROUGE in place of the judge for LongQA and Summ, where runs have
    them: complete without the judge's files."""
    rouge = [dataclasses.replace(r, helmet=r.helmet_rouge) for r in runs]
    if not any(r.helmet for r in rouge):
        return []
    table1, _ = _table1(rouge)
    lines = w.table(dataclasses.replace(table1, stem="table1_rouge", title=table1.title + ROUGE_TITLE))
    length = _helmet_table_length(rouge)
    if length is not None:
        table2 = _table2(rouge, length)
        lines += w.table(dataclasses.replace(table2, stem="table2_rouge", title=table2.title + ROUGE_TITLE))
    return lines


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
    lines += _rouge_tables(runs, w)
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
