"""Compare evaluation runs: side-by-side markdown tables and NIAH plots.

Each run folder is one written by ctxsynth.eval.runner (its scores.json is read back). The first
run is the baseline: difference heatmaps show every other run minus it, per NIAH variant; for two
runs with RULER items, a table of paired differences per task, length and template mode.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxsynth import io
from ctxsynth.errors import ConfigError, PathNotFound
from ctxsynth.eval import plots, tables
from ctxsynth.eval.ruler import report as ruler_report

log = logging.getLogger(__name__)


@dataclass
class Comparison:
    markdown: str
    summaries: dict[str, dict[str, Any]]
    plots: list[Path] = field(default_factory=list)


def load_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "scores.json"
    if not path.exists():
        raise PathNotFound(f"{run_dir} holds no scores.json: is it an evaluation run folder?")
    return json.loads(path.read_text(encoding="utf-8"))


def _names(run_dirs: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(run_dirs):
            raise ConfigError("give one name per run folder")
        return list(names)
    base = [Path(d).name or str(d) for d in run_dirs]
    # runs/a/eval and runs/b/eval share a folder name: fall back to the paths as given
    return base if len(set(base)) == len(base) else [str(d) for d in run_dirs]


def _plots(summaries: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    niah = {name: s["niah"] for name, s in summaries.items() if s.get("niah")}
    if not niah:
        return []
    paths = [plots.length_curves(niah, out_dir / "niah_accuracy_vs_length.png")]
    base_name, *others = list(niah)
    for other in others:
        for variant, grid in niah[other].items():
            base = niah[base_name].get(variant)
            if base:
                slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in other)
                paths.append(plots.difference_heatmap(
                    base, grid, out_dir / f"niah_diff_{variant}_{slug}.png",
                    f"{variant}: {other} - {base_name}"))
    return paths


def compare(run_dirs: Sequence[Path], out_dir: Path | None = None, names: Sequence[str] | None = None) -> Comparison:
    """Tables of all runs side by side; with `out_dir`, also comparison.md and the plots there."""
    labels = _names(run_dirs, names)
    summaries = {label: load_summary(Path(d)) for label, d in zip(labels, run_dirs, strict=True)}
    text = tables.markdown(summaries, title="Comparison: " + " vs ".join(labels))
    paired = ruler_report.paired_markdown([Path(d) for d in run_dirs], labels)  # two runs: RULER differences
    text += "\n## RULER: paired differences\n\n" + paired + "\n" if paired else ""
    result = Comparison(markdown=text, summaries=summaries)
    if out_dir is not None:
        out_dir = Path(out_dir)
        result.plots = _plots(summaries, out_dir / "plots")
        io.atomic_write_text(out_dir / "comparison.md", text)
    return result
