"""Figures of a run, as PNG files (matplotlib, no display)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def score_distribution(ranked: list[tuple[str, float]], selected: set[str], tau: float, path: Path) -> Path:
    """All heads' retrieval scores, best first; selected heads in red, tau dashed (paper Fig. 4)."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    names = [name for name, _ in ranked]
    values = [value for _, value in ranked]
    colors = ["tab:red" if name in selected else "tab:gray" for name in names]
    ax.bar(range(len(values)), values, color=colors, width=0.9)
    ax.axhline(tau, linestyle="--", color="black", linewidth=1, label=f"tau = {tau:g}")
    ax.set_xlabel("heads, sorted by retrieval score")
    ax.set_ylabel("retrieval score")
    ax.set_title(f"Retrieval-score distribution ({len(selected)} heads masked, in red)")
    ax.legend()
    return _save(fig, path)


def training_curves(log: list[dict], path: Path) -> Path:
    """Loss, and for DPO the reward margins and accuracies, over steps."""
    panels = [(key, title) for key, title in (("loss", "loss"), ("rewards/margins", "reward margin (chosen - rejected)"),
                                              ("rewards/accuracies", "reward accuracy"))
              if any(key in row for row in log)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    steps = [row["step"] for row in log]
    for ax, (key, title) in zip(axes[0], panels):
        ax.plot(steps, [row.get(key, float("nan")) for row in log], marker="o")
        ax.set_title(title)
        ax.set_xlabel("step")
        if key == "rewards/accuracies":
            ax.set_ylim(-0.05, 1.05)
    return _save(fig, path)


def retrieval_before_after(per_head: dict[str, dict], path: Path, group: str = "masked heads") -> Path:
    """Each head's score before vs after DPO; masked heads (or the `group` watched in their place) in
    red (paper Fig. 5)."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for masked, color, label in ((False, "tab:gray", "other heads"), (True, "tab:red", group)):
        points = [(v["before"], v["after"]) for v in per_head.values() if v["masked"] == masked]
        if points:
            ax.scatter(*zip(*points), color=color, label=label, s=18)
    top = max([max(v["before"], v["after"]) for v in per_head.values()] + [0.01]) * 1.05
    ax.plot([0, top], [0, top], linestyle=":", color="black", linewidth=1)
    ax.set_xlabel("retrieval score before DPO")
    ax.set_ylabel("retrieval score after DPO")
    ax.legend()
    return _save(fig, path)


def niah_bars(accuracies: dict[str, float], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = list(accuracies)
    ax.bar(names, [accuracies[n] for n in names],
           color=["tab:red" if n == "ablated" else "tab:blue" for n in names])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("NIAH accuracy")
    ax.tick_params(axis="x", rotation=20)
    return _save(fig, path)


def niah_heatmaps(grids: dict[str, list[dict]], path: Path) -> Path:
    """NIAH accuracy over context length x needle depth, one panel per model."""
    fig, axes = plt.subplots(1, len(grids), figsize=(3.8 * len(grids), 3.2), squeeze=False, constrained_layout=True)
    for ax, (name, grid) in zip(axes[0], grids.items()):
        lengths = sorted({cell["length"] for cell in grid})
        depths = sorted({cell["depth"] for cell in grid})
        values = {(cell["length"], cell["depth"]): cell["accuracy"] for cell in grid}
        matrix = [[values.get((length, depth), float("nan")) for length in lengths] for depth in depths]
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto", origin="lower")
        ax.set_xticks(range(len(lengths)), [str(x) for x in lengths])
        ax.set_yticks(range(len(depths)), [f"{d:g}%" for d in depths])
        ax.set_xlabel("context length (tokens)")
        ax.set_title(name)
    axes[0][0].set_ylabel("needle depth")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="accuracy")
    return _save(fig, path)
