"""The dataset report: `write_report(run_dir)` writes run_dir/report/README.md and its PNG plots.

`collect` reads the run, `plots` draws, `card` writes the text, `caveats` holds the warning rules.
It works on partial runs: sections whose stage has not produced output are left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ctxsynth.errors import PathNotFound
from ctxsynth.io import atomic_write_bytes, atomic_write_text
from ctxsynth.report.card import render_card
from ctxsynth.report.caveats import caveats
from ctxsynth.report.collect import RunSummary, collect
from ctxsynth.report.plots import PLOTS

__all__ = ["RunSummary", "collect", "write_report"]

log = logging.getLogger(__name__)


def write_report(run_dir: Path, price_table: dict[str, Any] | None = None) -> Path:
    """Write the card and plots under run_dir/report/ and return the card's path.

    price_table: {model: {"input_per_mtok": float, "output_per_mtok": float}} to show money next to
    token usage; models it lacks have no cost.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PathNotFound(f"run directory {run_dir} does not exist")
    summary = collect(run_dir)
    out = run_dir / "report"
    drawn: list[tuple[str, str, str]] = []
    for name, title, draw, caption in PLOTS:
        png = draw(summary, price_table)
        stale = out / name
        if png is None:
            stale.unlink(missing_ok=True)
            continue
        atomic_write_bytes(stale, png)
        drawn.append((name, title, caption))
    card = out / "README.md"
    text = render_card(summary, drawn, caveats(summary, price_table), price_table)
    atomic_write_text(card, text)
    if summary.exports:  # the export folder is the Hub dataset: the same card, plots linked from report/
        atomic_write_text(run_dir / "export" / "README.md", hub_card(text, drawn, "../report/"))
    log.info("report for %s: %d plots, card at %s", run_dir, len(drawn), card)
    return card


def hub_card(text: str, drawn: list[tuple[str, str, str]], prefix: str) -> str:
    """The card with each plot link prefixed (the plots stay in report/)."""
    for name, _, _ in drawn:
        text = text.replace(f"]({name})", f"]({prefix}{name})")
    return text
