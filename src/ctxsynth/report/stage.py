"""The report stage's body: the dataset card and its plots (ctxsynth.report), and, when
`export.push_to_hub` names a repo, the export pushed with the full card."""

from __future__ import annotations

from typing import Any

from ctxsynth.export.stage import push_if_configured
from ctxsynth.pipeline.run import Run
from ctxsynth.progress import Progress
from ctxsynth.report import write_report


def run_report(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    path = write_report(run.dir, price_table=run.config.report.prices or None)
    summary: dict[str, Any] = {"card": str(path)}
    hub_card = run.stage_dir("export") / "README.md"
    if run.config.export.push_to_hub and hub_card.exists():
        card = hub_card.read_text(encoding="utf-8").replace("](../report/", "](report/")
        summary["pushed"] = push_if_configured(run, card, sorted(path.parent.glob("*.png")))
    run.markers("report").mark_stage(summary)
    return summary
