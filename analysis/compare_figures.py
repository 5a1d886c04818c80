"""Figures that compare runs (PNG, matplotlib, no display); saved atomically by `figures._save`."""
from __future__ import annotations

from pathlib import Path

from analysis.figures import _save, plt


def _colors(count: int) -> list:
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(count)]


def score_distributions(series: list[dict], path: Path) -> Path:
    """Sorted retrieval scores, one line per model; each model's tau values dashed in its colour (paper Fig. 4).

    `series`: [{"label": str, "scores": [float, ...] best first, "taus": [float, ...]}]. The x axis is the
    rank as a fraction of the model's heads, so models with different head counts share one axis.
    """
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for color, entry in zip(_colors(len(series)), series):
        scores = list(entry["scores"])
        n = len(scores)
        xs = [(i + 0.5) / n for i in range(n)] if n else []
        ax.plot(xs, scores, color=color, linewidth=1.6, label=f"{entry['label']} ({n} heads)")
        for tau in entry["taus"]:
            above = sum(score >= tau for score in scores)
            ax.axhline(tau, linestyle="--", color=color, linewidth=1,
                       label=f"tau = {tau:g} ({above} heads at or above)")
    ax.set_xlabel("heads, sorted by retrieval score (fraction of the model's heads)")
    ax.set_ylabel("retrieval score")
    ax.set_xlim(0, 1)
    ax.set_title("Retrieval-score distribution per model")
    ax.legend(fontsize=8)
    return _save(fig, path)


def delta_bars(rows: list[tuple[str, float, float]], path: Path) -> Path:
    """Mean retrieval-score change after training, masked heads vs other heads, grouped per run (paper Fig. 5)."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows) + 2), 3.6))
    width = 0.38
    xs = range(len(rows))
    ax.bar([x - width / 2 for x in xs], [r[1] for r in rows], width, color="tab:red", label="masked heads")
    ax.bar([x + width / 2 for x in xs], [r[2] for r in rows], width, color="tab:gray", label="other heads")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(list(xs), [r[0] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("mean change of retrieval score\n(after - before training)")
    ax.set_title("Retrieval scores before vs after training")
    ax.legend()
    return _save(fig, path)


def concentration_vs_gain(points: list[dict], gain_label: str, path: Path) -> Path:
    """Gini and top-10 share of each run's score distribution against its gain, one panel per metric.

    `points`: [{"label": str, "gini": float, "top10_share": float, "gain": float}]; each point is
    numbered, the legend names the runs.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    colors = _colors(len(points))
    for ax, key, title in ((axes[0], "gini", "Gini coefficient"), (axes[1], "top10_share", "top-10 share")):
        for number, (color, p) in enumerate(zip(colors, points), start=1):
            ax.scatter([p[key]], [p["gain"]], color=color, s=36, label=f"{number}: {p['label']}")
            ax.annotate(str(number), (p[key], p["gain"]), fontsize=8, xytext=(4, 3), textcoords="offset points")
        ax.axhline(0, color="black", linewidth=0.6, linestyle=":")
        ax.set_xlabel(title)
    axes[0].set_ylabel(gain_label)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("Concentration of retrieval scores vs gain")
    return _save(fig, path)
