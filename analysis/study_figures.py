"""Figures of a study (PNG): Table 1 as curves over context length, Figure 5 (retrieval-score change
of masked vs other heads per strategy), Figure 4 (the sorted retrieval scores with tau)."""
from __future__ import annotations

from pathlib import Path

from analysis.figures import _save, plt, score_distribution
from analysis.stats import estimate
from retmask.io import read_json


def _error_bars(estimates) -> tuple[list[float], list[list[float]]]:
    means = [e.mean for e in estimates]
    below = [e.mean - e.low if e.low is not None else 0.0 for e in estimates]
    above = [e.high - e.mean if e.high is not None else 0.0 for e in estimates]
    return means, [below, above]


def table1_figure(data, path: Path) -> Path:
    """The study metric by context length: base, and each strategy's mean with its 95% interval."""
    from analysis.study import by_length

    lengths = data.lengths()
    fig, ax = plt.subplots(figsize=(7, 4))
    base = by_length(data.untrained_records("base")[0], data.metric)
    ax.plot(lengths, [base[length] for length in lengths], color="black", linestyle="--", label="base")
    for strategy in data.strategies:
        runs = data.trained.get(strategy)
        if not runs:
            continue
        estimates = [estimate([by_length(r, data.metric)[length] for r in runs.values()]) for length in lengths]
        means, bars = _error_bars(estimates)
        ax.errorbar(lengths, means, yerr=bars, marker="o", capsize=3, label=strategy)
    ax.axvline(data.long_from, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("context length (tokens); dotted: start of the long band")
    ax.set_ylabel(data.metric.replace("_", " "))
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    return _save(fig, path)


def figure5(data, path: Path) -> Path:
    """Mean retrieval-score change after training, masked (or, unmasked, retrieval) heads vs the
    others, per strategy, with 95% intervals over seeds."""
    strategies = [s for s in data.strategies if data.change.get(s)]
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(strategies) + 2), 3.6))
    width = 0.38
    for offset, key, color, label in ((-width / 2, "masked_mean_delta", "tab:red", "masked / retrieval heads"),
                                      (width / 2, "other_mean_delta", "tab:gray", "other heads")):
        estimates = [estimate([c[key] for c in data.change[s].values()]) for s in strategies]
        means, bars = _error_bars(estimates)
        ax.bar([i + offset for i in range(len(strategies))], means, width, yerr=bars, capsize=3, color=color,
               label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(strategies)), strategies, rotation=20)
    ax.set_ylabel("retrieval score after - before")
    ax.legend(fontsize=8)
    return _save(fig, path)


def figure4(run_dir: Path, path: Path) -> Path:
    """The retrieval scores the whole study shares, best first, the retrieval heads in red."""
    from retmask.config import read_saved_config

    summary = read_json(Path(run_dir) / "stages/merge_scores/summary.json")
    heads = read_json(Path(run_dir) / "stages/select_heads/heads.json")
    tau = read_saved_config(Path(run_dir) / "config.yaml").selection.tau
    return score_distribution([tuple(item) for item in summary["ranked"]], set(heads["retrieval_heads"]), tau, path)
