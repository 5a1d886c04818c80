"""The report of one finished run: `report/index.md` plus PNG figures, from the run's files alone.

Every number is read from a stage's outputs; nothing here is computed twice or written in.
"""
from __future__ import annotations

import json
from pathlib import Path

from analysis import figures
from analysis.health import Health, run_health
from analysis.runs import judge_note, read_general
from retmask.config import ExperimentConfig, read_saved_config
from retmask.io import read_json, read_jsonl, write_text
from retmask.rundir import RunDir
from retmask.strategies import get_strategy

SYNTHESIS_BASE = "synthesis_base"  # evaluate's name for the unmasked synthesis model of a cross-model run


def _table(header: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _stage_times(run: RunDir) -> list[list]:
    manifest = run.read_manifest()
    stages = manifest.get("stages", {})
    rows = []
    for name in manifest.get("order", sorted(stages)):
        entry = stages[name]
        seconds = run.shard_seconds(name)
        wall = entry.get("wall_seconds")
        rows.append([name, entry.get("shards", len(seconds)), round(sum(seconds), 1),
                     "skipped (up to date)" if entry.get("skipped") else (wall if wall is not None else "-")])
    return rows


def _models_section(run: RunDir, cfg: ExperimentConfig) -> list[str]:
    """Which model did what: detection and masking, each side of the pairs, training."""
    synthesizer, trained = cfg.synthesis_source().path, cfg.model.path
    strategy = get_strategy(cfg.strategy)
    heads = read_json(run.stage_dir("select_heads") / "heads.json")
    rejected = {
        "masked": f"`{synthesizer}` with its {heads['count']} masked heads ablated (`stages/mask/model`)",
        "rejected_model": f"`{cfg.rejected_model.path}`",
        "normal": f"a second sample of `{synthesizer}`; the judge puts the one it prefers on the chosen side",
        "none": f"none ({strategy.trainer.upper()} on the chosen responses alone)",
    }[strategy.rejected_from]
    policy = f"`{trained}`" + (", with itself before training as the DPO reference" if strategy.trainer == "dpo"
                               else f", {strategy.trainer.upper()}")
    rows = [["retrieval heads detected on (masked in)", f"`{synthesizer}`"],
            ["chosen responses", f"`{synthesizer}`"], ["rejected responses", rejected], ["trained", policy]]
    lines = ["## Models", "", _table(["role", "model"], rows)]
    if cfg.cross_model:
        lines += ["", "Cross-model synthesis: the synthesis model's pairs train another model. The masked heads, "
                      "the ablation and its controls below are the synthesis model's; NIAH `base` and `trained` "
                      "and the retrieval scores before vs after training are the trained model's."]
    return lines


def _retrieval_section(run: RunDir, tau: float, out: Path) -> list[str]:
    summary = read_json(run.stage_dir("merge_scores") / "summary.json")
    selection = read_json(run.stage_dir("select_heads") / "heads.json")
    ranked = [(name, score) for name, score in summary["ranked"]]
    figures.score_distribution(ranked, set(selection["heads"]), tau, out / "retrieval_scores.png")
    top = [[name, score, "yes" if name in selection["heads"] else ""] for name, score in ranked[:10]]
    conc = summary["concentration"]
    detected = summary.get("source", "detection") == "detection"
    return [
        "## Retrieval heads",
        (f"{'Detected on' if detected else 'Heads of'} `{selection['model']}`. " if "model" in selection else "")
        + (f"Detection kept {summary['kept']} of {summary['instances']} NIAH instances. " if detected else
           f"Scores read from the published file `{summary['source']}` ({summary['kept']} tests per head), not "
           "detected here. ")
        + "Retrieval heads "
        f"(`{selection['retrieval_rule']['rule']}`, tau {tau:g}): {', '.join(selection['retrieval_heads'])}. "
        f"Strategy `{selection['strategy']}` masks {selection['count']} heads: "
        f"{', '.join(selection['heads']) or 'none'}.",
        "",
        "![retrieval-score distribution](retrieval_scores.png)",
        "",
        _table(["head", "retrieval score", "masked"], top),
        "",
        "Concentration of the score distribution:",
        "",
        _table(list(conc), [list(conc.values())]),
    ]


def _niah_section(run: RunDir, out: Path) -> list[str]:
    niah = read_json(run.stage_dir("evaluate") / "niah.json")
    accuracies = {entry["model"]: entry["accuracy"] for entry in niah}
    controls = [v for k, v in accuracies.items() if k.startswith("random_control")]
    figures.niah_bars(accuracies, out / "niah_accuracy.png")
    rows = [[entry["model"], len(entry["masked_heads"]), entry["accuracy"]] for entry in niah]
    grids = {entry["model"]: entry["grid"] for entry in niah
             if entry["model"] in ("base", SYNTHESIS_BASE, "ablated", "trained")}
    figures.niah_heatmaps(grids, out / "niah_heatmaps.png")
    lines = [
        "## NIAH accuracy: normal, ablated, random-mask controls, trained",
        "",
        "![NIAH accuracy](niah_accuracy.png)",
        "",
        _table(["model", "heads masked", "accuracy"], rows),
        "",
        "Accuracy over context length and needle depth:",
        "",
        "![NIAH heatmaps](niah_heatmaps.png)",
    ]
    # The ablation's reference is the model it was ablated from: the synthesis model, when another.
    reference = SYNTHESIS_BASE if SYNTHESIS_BASE in accuracies else "base"
    if reference == SYNTHESIS_BASE:
        checkpoints = {entry["model"]: entry.get("checkpoint", "?") for entry in niah}
        lines += ["", f"`base` and `trained`: the trained model `{checkpoints['base']}` before and after training. "
                      f"`{SYNTHESIS_BASE}`, `ablated` and the controls: the synthesis model "
                      f"`{checkpoints[SYNTHESIS_BASE]}`, unmasked, with its retrieval heads ablated, and with "
                      "control masks of the same size."]
    if controls:
        mean_control = sum(controls) / len(controls)
        lines += ["", f"Ablated accuracy {accuracies['ablated']:.3f} vs normal {accuracies[reference]:.3f} and "
                      f"vs random non-retrieval masks of the same size {mean_control:.3f} "
                      f"(mean of {len(controls)} draws)."]
    return lines


def _pairs_section(run: RunDir) -> list[str]:
    stats = read_json(run.stage_dir("pairs") / "statistics.json")
    dropped = stats.pop("dropped")
    judge = stats.get("judge")
    return [
        "## Preference pairs",
        "",
        f"{stats['pairs']} examples from {stats['prompts']} prompts."
        + (f" {stats['kept_empty_rejected']} rejected responses are empty (the rejected model gave no answer) and "
           "are kept as rejections." if stats["kept_empty_rejected"] else ""),
        "",
        _table(["pairs", "mean input tokens", "mean chosen tokens", "mean rejected tokens"],
               [[stats["pairs"], stats["mean_input_tokens"], stats["mean_chosen_tokens"],
                 stats["mean_rejected_tokens"]]]),
        "",
        "Dropped: " + (", ".join(f"{k} {v}" for k, v in dropped.items()) if dropped else "none")
        + f". Kept though cut off at max_new_tokens: chosen {stats.get('kept_truncated_chosen', 0)}, "
          f"rejected {stats.get('kept_truncated_rejected', 0)}." + _prompt_filter_line(run),
        *(["", f"Judge: {judge['ties']} ties ({judge['tie_rate']:.1%}) and {judge['unrated']} unrated "
                   f"({judge['unrated_rate']:.1%}) of {judge['judged']} prompts judged; "
                   + ("dropped." if judge["ties_handling"] == "drop" else "kept, the first sample chosen.")]
           if judge else []),
    ]


def _prompt_filter_line(run: RunDir) -> str:
    from jobs.stages.prompts import prompt_statistics

    filtered = prompt_statistics(run)
    if filtered is None:
        return ""
    dropped = ", ".join(f"{k} {v}" for k, v in filtered["dropped"].items()) or "none"
    return (f" Prompts before synthesis: {filtered['prompts']} kept (prompt limit {filtered['token_limit']} "
            f"tokens); dropped: {dropped}.")


def _training_section(run: RunDir, out: Path) -> list[str]:
    log = read_jsonl(run.stage_dir("train") / "train_log.jsonl")
    trainer = read_json(run.stage_dir("train") / "summary.json").get("trainer", "dpo").upper()
    if not log:
        return [f"## Training ({trainer})", "", "No training log entries."]
    figures.training_curves(log, out / "dpo_training.png")
    keys = ["loss", "rewards/margins", "rewards/accuracies"]
    first, last = log[0], log[-1]
    truncation = read_json(run.stage_dir("train") / "truncation.json")
    return [
        f"## Training ({trainer})",
        "",
        f"Sequences: {truncation.get('regime', 'full')}. Before training: {truncation['truncated']} of "
        f"{truncation['examples']} examples exceed max_length {truncation['max_length']} (longest "
        f"{truncation['longest']} tokens)" + (", cut by the trainer." if truncation.get("regime") == "trl-0.24" else "."),
        "",
        "![training curves](dpo_training.png)",
        "",
        _table(["", "step"] + keys, [["first", first["step"]] + [first.get(k, "-") for k in keys],
                                      ["last", last["step"]] + [last.get(k, "-") for k in keys]]),
    ]


def _change_section(run: RunDir, out: Path, cross_model: bool) -> list[str]:
    change = read_json(run.stage_dir("evaluate") / "retrieval_change.json")
    group = change.get("group", "masked heads")  # the masked heads, or the group watched where none were
    figures.retrieval_before_after(change["per_head"], out / "retrieval_before_after.png", group)
    masked = sorted(((n, v) for n, v in change["per_head"].items() if v["masked"]), key=lambda item: item[0])
    statement = ["The masked heads are the synthesis model's: none of the trained model's heads was masked, and "
                 "its head L-H is not the synthesis model's L-H, so no change of the masked heads is computed. "
                 "The trained model's own best heads before training, as many as were masked, are set against "
                 "its other heads instead.", ""] if cross_model else []
    return [
        "## Retrieval scores before vs after DPO",
        "",
        *statement,
        "![before vs after](retrieval_before_after.png)",
        "",
        _table(["", "mean change"], [[group, change["masked_mean_delta"]],
                                     ["other heads", change["other_mean_delta"]]]),
        "",
        _table([group, "before", "after"], [[n, v["before"], v["after"]] for n, v in masked]),
        "",
        f"Mean retrieval score of all heads: {change['mean_before']:.4f} before, {change['mean_after']:.4f} after.",
    ]


def _helmet_section(run: RunDir) -> list[str]:
    """HELMET averages per model and length; an incomplete one is marked and what is missing named."""
    averages = read_json(run.stage_dir("helmet_scores") / "averages.json")
    lines = ["## HELMET", ""]
    missing: list[str] = []
    for model, per_length in averages.items():
        categories = list(next(iter(per_length.values()))["categories"])
        rows = []
        for length, entry in per_length.items():
            cells = [entry["categories"][c] for c in categories] + [entry["overall"]]
            rows.append([length] + ["incomplete" if c["incomplete"] else round(c["value"], 2) for c in cells])
            missing += [m for c in entry["categories"].values() for m in c["missing"]]
        lines += [f"{model} model:", "", _table(["length", *categories, "overall"], rows), ""]
    if missing:
        lines += ["Missing or failed results (their averages are marked incomplete):", ""]
        lines += [f"- {m}" for m in sorted(set(missing))]
    if note := judge_note([run.root]):
        lines += ["", note]
    return lines


def general_section(results: Path) -> list[str]:
    """Table 5: each general benchmark of the model before and after training, and the change."""
    scores = read_general(results)
    base, trained = scores["base"], scores["trained"]

    def signed(task: str) -> str:
        return "-" if None in (base.get(task), trained.get(task)) else f"{trained[task] - base[task]:+.3f}"

    metrics_file = results.parent / "metrics.json"
    metrics = read_json(metrics_file) if metrics_file.is_file() else {}
    rows = [[task, metrics.get(task, "-"), "-" if base.get(task) is None else base[task],
             "-" if trained.get(task) is None else trained[task], signed(task)]
            for task in dict.fromkeys([*base, *trained])]
    return ["## General abilities (Table 5): base vs trained", "",
            "lm-evaluation-harness on the same items for both models (stages/general/results.json; lm-eval's "
            "own output in stages/general/lm_eval/).", "",
            _table(["task", "metric", "base", "trained", "change (trained - base)"], rows)]


def _health_lines(health: Health) -> list[str]:
    mark = "" if health.learned else "⚠ "
    return [f"**{mark}Health:** {health.line}.", "", f"**Verdict: {health.verdict}**", ""]


def _rehearsal_lines(run: RunDir) -> list[str]:
    """A rehearsal's banner and what it changed (rehearsal.json beside the run), else nothing."""
    path = run.root / "rehearsal.json"
    if not path.is_file():
        return []
    changed = read_json(path)["changes"]
    return ["> **Rehearsal**: tiny random twins of the models, every workload cut to a handful; these numbers "
            "mean nothing. Changed from the real run: " + ", ".join(f"`{key}`" for key in changed) + ".", ""]


def write_run_report(run: RunDir, tau: float) -> Path:
    out = run.report_dir
    health = run_health(run)
    cfg = read_saved_config(run.config_path)
    lines = [f"# RetMask run report: {run.root.name}", "", *_rehearsal_lines(run), *_health_lines(health)]
    toy = run.stage_dir("toy_model") / "toy_model.json"
    if toy.is_file():
        summary = read_json(toy)["summary"]
        which = " (the trained one)" if cfg.cross_model else ""  # the toy_model stage builds `model`'s recipe
        lines += [f"Toy model{which}: {summary['parameters']:,} parameters, held-out exact copy "
                  f"{summary['held_out_exact_match']:.3f}, trained in {summary['train_seconds']} s.", ""]
    sections = [_models_section(run, cfg), _retrieval_section(run, tau, out), _niah_section(run, out),
                _pairs_section(run), _training_section(run, out), _change_section(run, out, cfg.cross_model)]
    if (run.stage_dir("helmet_scores") / "averages.json").is_file():
        sections.append(_helmet_section(run))
    if (run.stage_dir("general") / "results.json").is_file():
        sections.append(general_section(run.stage_dir("general") / "results.json"))
    for section in sections:
        lines += section + [""]
    lines += ["## Stage times", "", _table(["stage", "shards", "compute s (sum of shards)", "wall s"],
                                           _stage_times(run)), ""]
    path = out / "index.md"
    write_text(path, "\n".join(lines))
    write_text(out / "metrics.json", json.dumps(_headline(run, health), indent=2) + "\n")
    return path


def _headline(run: RunDir, health: Health) -> dict:
    """The run's key figures in one machine-readable file, for cross-run analysis."""
    niah = read_json(run.stage_dir("evaluate") / "niah.json")
    change = read_json(run.stage_dir("evaluate") / "retrieval_change.json")
    log = read_jsonl(run.stage_dir("train") / "train_log.jsonl")
    return {
        "health": health.to_dict(),
        "niah_accuracy": {entry["model"]: entry["accuracy"] for entry in niah},
        "masked_heads": read_json(run.stage_dir("select_heads") / "heads.json")["heads"],
        "masked_mean_delta": change["masked_mean_delta"],
        "other_mean_delta": change["other_mean_delta"],
        "final_margin": log[-1].get("rewards/margins") if log else None,
        "pairs": read_json(run.stage_dir("pairs") / "statistics.json"),
    }
