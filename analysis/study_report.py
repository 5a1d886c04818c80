"""The study report's pages: report/index.md with the paper's tables the study names, then the
claims, NIAH tables, tau table, health and figures of the study (or of each of its variants, on
a page of its own), and the summary `retmask study` prints. The numbers come from analysis/study.py
and analysis/paper_report.py, which read the study's run directories.
"""
from __future__ import annotations

from pathlib import Path

from analysis.stats import Estimate
from analysis.study import RETMASK, NothingToReport, StudyData, claims, table_by_length
from retmask.io import read_json, write_json, write_text


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(r) + " |" for r in rows]]


def write_figures(data: StudyData, out: Path) -> list[str]:
    from analysis.study_figures import figure4, figure5, table1_figure

    written = [table1_figure(data, out / "table1_by_length.png").name,
               figure5(data, out / "figure5_retrieval_change.png").name]
    if data.scores_run is not None:
        written.append(figure4(data.scores_run, out / "figure4_retrieval_scores.png").name)
    return written


def tau_section(data: StudyData) -> tuple[list[str], dict]:
    """A tau sweep's Table 6 (markdown) and its numbers with the chosen tau; nothing otherwise."""
    from analysis.tau import tau_markdown

    plan = data.plan
    if not plan.get("taus"):
        return [], {}
    metric = plan["tau_metric"]
    rows, chosen = data.tau_rows, data.chosen_tau
    scope = (f"over HELMET {', '.join(plan['tau_helmet_categories'])}"
             + (" (ROUGE in place of the GPT-4 judge)" if metric == "helmet_rouge" else "")
             if metric.startswith("helmet") else f"at lengths >= {data.long_from}")
    if data.tau_chosen_on != "these seeds":
        verdict = (f"**tau = {chosen:g}**, chosen on {data.tau_chosen_on} (`retmask study --development`); the claims "
                   "below are measured on these report seeds at that tau")
    elif chosen is not None:
        verdict = (f"**tau = {chosen:g}**, the highest mean over seeds (ties: the smaller tau)"
                   + ("" if plan.get("development") else "; chosen on these same seeds, so the claims below are "
                      "measured where tau was tuned: run `retmask study --development` first to choose it apart"))
    else:
        verdict = "none: no retrieval-mask run finished"
    lines = [f"## Table 6 in miniature: tau chosen on `{metric}`", "",
             f"The trained model's {metric} {scope}, per tau of the {RETMASK} runs. Chosen: {verdict}.", "",
             *tau_markdown(rows, metric, data.seeds), "",
             "The other tables have a row per (strategy, tau); the claims are measured on the runs at the chosen "
             "tau (C1 on its ablation and its controls of as many heads).", ""]
    return lines, {"metric": metric, "rows": [row.to_dict() for row in rows], "chosen": chosen,
                   "chosen_on": data.tau_chosen_on}


REHEARSAL_BANNER = ("> **Rehearsal**: every model is a tiny random twin of the real one and every workload is cut to a "
                    "handful. These numbers mean nothing; the rehearsal shows that the study runs through to this "
                    "report. The paper's numbers stand beside them to show the layout only.")


def variant_report(data: StudyData, out: Path) -> tuple[list[str], dict]:
    """One variant's (or a study without variants') claims, NIAH tables, tau table, health and
    figures in `out`: its markdown lines and numbers."""
    found = claims(data)
    tau_lines, tau_numbers = tau_section(data)
    tables = {metric: table_by_length(data, metric) for metric in ("rouge_recall", "accuracy")}
    figures = write_figures(data, out)
    title = "development seeds" if data.plan["development"] else "report seeds"
    lines = [f"Strategies x seeds {data.seeds} ({title}); claims compare `{data.metric}`, the long band is "
             f"lengths >= {data.long_from}, intervals are 95% Student-t over seeds (C1: over control draws).", ""]
    if data.missing:
        lines += [f"**Runs without results**: {', '.join(data.missing)}", ""]
    concentration = data.concentration()
    if concentration:
        lines += ["Retrieval-head concentration of the model (the paper relates gains to it): " +
                  ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in concentration.items()),
                  ""]
    lines += tau_lines
    lines += ["## Claims", "", *markdown_table(["claim", "verdict", "evidence"],
                                               [[f"{c.key}: {c.statement}", c.verdict, "<br>".join(c.evidence)]
                                                for c in found]), ""]
    for metric, (header, rows, _) in tables.items():
        lines += [f"## Table 1 in miniature: NIAH {metric.replace('_', ' ')} by context length", "",
                  *markdown_table(header, rows), ""]
    lines += ["## Runs: did each training learn?", "", *markdown_table(
        ["strategy", "seed", "health", "verdict"],
        [[name, str(seed), h["line"], h["verdict"]] for name in data.strategies
         for seed, h in sorted(data.health.get(name, {}).items())]), ""]
    lines += ["## Figures", "", *[f"![{name}]({name})" for name in figures], ""]
    return lines, {
        "claims": [vars(c) for c in found],
        "tables": {metric: numbers for metric, (_, _, numbers) in tables.items()},
        "concentration": data.concentration(),
        "health": {name: {str(seed): h for seed, h in seeds.items()} for name, seeds in data.health.items()},
        "missing": data.missing,
        **({"tau": tau_numbers} if tau_numbers else {})}


def write_study_report(study_dir: Path) -> Path:
    """report/index.md: the paper's tables the study names, then each variant's claims and NIAH
    tables (a variant's on its own page, report/<variant>/index.md), as far as the runs go."""
    from analysis.paper_report import paper_section

    study_dir = Path(study_dir)
    plan = read_json(study_dir / "study.json")
    out = study_dir / "report"
    banner = [REHEARSAL_BANNER, ""] if plan.get("rehearsal") else []
    lines = [f"# RetMask study: {plan['name']}", "", *banner]
    paper_lines, paper_numbers = paper_section(study_dir, out)
    lines += paper_lines
    results: dict = {"paper_tables": paper_numbers} if paper_numbers else {}
    variants = plan.get("variants") or {}
    if "evaluate" in plan.get("stages", ["evaluate"]):  # the runs reach NIAH evaluation: claims and tables
        if not variants:
            variant_lines, numbers = variant_report(StudyData(study_dir), out)
            lines += variant_lines
            results.update(numbers)
        else:
            lines += ["## Each variant: claims, NIAH and health", ""]
            results["variants"] = {}
            for name, variant in variants.items():
                try:
                    data = StudyData(study_dir, name)
                except NothingToReport:
                    lines.append(f"- {variant['label']}: no run has finished its evaluation yet")
                    continue
                page = out / name
                variant_lines, numbers = variant_report(data, page)
                write_text(page / "index.md", "\n".join([f"# {plan['name']}: {variant['label']}", "", *banner,
                                                         *variant_lines]))
                results["variants"][name] = numbers
                lines.append(f"- [{variant['label']}]({name}/index.md)")
            lines.append("")
    write_text(out / "index.md", "\n".join(lines))
    write_json(out / "study_results.json", results)
    return out / "index.md"


def results_by_variant(results: dict) -> dict[str | None, dict]:
    """A study's results per variant (None: a study without variants); empty when its runs stop
    before evaluation."""
    if "variants" in results:
        return results["variants"]
    return {None: results} if "claims" in results else {}


def summary_lines(study_dir: Path) -> list[str]:
    """What `retmask study` prints at the end: per variant the long-band column and each claim's
    verdict; then where the paper's tables are."""
    results = read_json(Path(study_dir) / "report" / "study_results.json")
    plan = read_json(Path(study_dir) / "study.json")
    lines = []
    for variant, numbers in results_by_variant(results).items():
        if variant is not None:
            lines.append(f"[{variant}]")
        lines += _variant_summary(plan, numbers)
    if results.get("paper_tables"):
        lines.append(f"paper tables ({', '.join(results['paper_tables'])}) with the paper's numbers beside ours: "
                     f"{Path(study_dir) / 'report' / 'index.md'}")
    return lines


def _variant_summary(plan: dict, results: dict) -> list[str]:
    lines = [f"{plan['metric']} at lengths >= {plan['long_from']} (mean [95% interval] over seeds {plan['seeds']}):"]
    table = results["tables"][plan["metric"]]
    for name in table:  # base, then each strategy (in a tau sweep: each strategy and tau) as the report has them
        long = table[name]["long"]
        text = f"{long:.3f}" if isinstance(long, float) else Estimate(**long).text()
        lines.append(f"  {name:<22} {text}")
    lines += [f"{c['key']} {c['verdict']:<12} {c['statement']}" for c in results["claims"]]
    if "tau" in results:
        tau = results["tau"]
        lines.append(f"tau chosen on {tau['metric']} (mean over seeds): " + ", ".join(
            f"{row['tau']:g} {row['mean']:.3f}" if row["mean"] is not None else f"{row['tau']:g} not run"
            for row in tau["rows"]) + (f" -> tau {tau['chosen']:g}" if tau["chosen"] is not None else " -> none"))
    concentration = results.get("concentration") or {}
    if "gini" in concentration:
        lines.append(f"retrieval-head concentration: gini {concentration['gini']:.3f}, "
                     f"top-10 share {concentration.get('top10_share', float('nan')):.3f}")
    return lines
