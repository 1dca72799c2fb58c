"""NIAH plots (matplotlib, Agg backend, PNG): a depth x length heatmap per variant, a tuned-minus-
base difference heatmap, and accuracy-vs-length curves of several runs on one figure.

Inputs are the `niah` blocks of `ctxsynth.eval.scores.summarize` (scores x100, None = no items).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Grid = Mapping[str, Any]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    log.info("wrote %s", path)
    return path


def _matrix(grid: Grid) -> list[list[float]]:
    return [[math.nan if v is None else float(v) for v in row] for row in grid["scores"]]


def _draw_heatmap(values: list[list[float]], grid: Grid, title: str, path: Path, *, cmap: str,
                  vmin: float, vmax: float, label: str) -> Path:
    plt = _pyplot()
    lengths, depths = grid["lengths"], grid["depths"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(lengths), 1.2 + 0.55 * len(depths)))
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(lengths)), [f"{ln:g}" for ln in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("needle depth")
    ax.set_title(title)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label=label)
    return _save(fig, path)


def heatmap(grid: Grid, path: Path, title: str) -> Path:
    """Accuracy (0-100) of one variant, depth rows x length columns."""
    return _draw_heatmap(_matrix(grid), grid, title, path, cmap="RdYlGn", vmin=0, vmax=100, label="accuracy")


def difference_grid(base: Grid, tuned: Grid) -> dict[str, Any]:
    """tuned - base on the cells both runs have (None elsewhere), over the union of axes."""
    lengths = sorted(set(base["lengths"]) | set(tuned["lengths"]), key=float)
    depths = sorted(set(base["depths"]) | set(tuned["depths"]))

    def cell(g: Grid, d: float, ln: Any) -> float | None:
        if d not in g["depths"] or ln not in g["lengths"]:
            return None
        return g["scores"][g["depths"].index(d)][g["lengths"].index(ln)]

    scores = []
    for d in depths:
        row = []
        for ln in lengths:
            a, b = cell(base, d, ln), cell(tuned, d, ln)
            row.append(None if a is None or b is None else round(b - a, 2))
        scores.append(row)
    return {"lengths": lengths, "depths": depths, "scores": scores}


def difference_heatmap(base: Grid, tuned: Grid, path: Path, title: str) -> Path:
    diff = difference_grid(base, tuned)
    return _draw_heatmap(_matrix(diff), diff, title, path, cmap="RdBu", vmin=-100, vmax=100,
                         label="tuned - base (points)")


def length_curves(runs: Mapping[str, Mapping[str, Grid]], path: Path, title: str = "NIAH accuracy vs length") -> Path:
    """One panel per variant, one line per run: mean accuracy over depths at each length."""
    plt = _pyplot()
    variants = sorted({v for niah in runs.values() for v in niah})
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 3.6), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        for name, niah in runs.items():
            grid = niah.get(variant)
            if not grid:
                continue
            xs = sorted(grid["by_length"], key=float)
            ax.plot([float(x) for x in xs], [grid["by_length"][x] for x in xs], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ticks = sorted({float(x) for grid in (n.get(variant) for n in runs.values()) if grid for x in grid["by_length"]})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_ylim(-2, 102)
        ax.set_title(variant)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def run_plots(niah: Mapping[str, Grid], folder: Path, run_name: str) -> list[Path]:
    """The heatmaps of one run, one PNG per variant."""
    return [heatmap(grid, folder / f"niah_{variant}.png", f"{run_name}: {variant}")
            for variant, grid in sorted(niah.items())]
