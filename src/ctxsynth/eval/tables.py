"""Markdown tables for one evaluation run or several side by side (one column per run).

Input is what `ctxsynth.eval.scores.summarize` returns, keyed by run name; missing figures show
as "-". A single run also gets its full NIAH depth x length grids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctxsynth.eval import longbench_v2
from ctxsynth.eval.ruler import report as ruler_report

Summary = Mapping[str, Any]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _keys(summaries: Mapping[str, Summary], block: str) -> list[str]:
    seen: dict[str, None] = {}
    for s in summaries.values():
        for key in s.get(block) or {}:
            seen[key] = None
    return list(seen)


def _tasks(summaries: Mapping[str, Summary]) -> str:
    names = list(summaries)
    rows = []
    for task in sorted(_keys(summaries, "tasks")):
        cells = [(s.get("tasks") or {}).get(task) for s in summaries.values()]
        n = next((c["n"] for c in cells if c), None)
        rows.append([task, n, *[c["score"] if c else None for c in cells]])
    rows.append(["mean over tasks", None, *[s.get("mean_over_tasks") for s in summaries.values()]])
    return "## Tasks (score x100)\n\n" + _table(["task", "n", *names], rows)


def _flat_block(summaries: Mapping[str, Summary], block: str, title: str, skip: Sequence[str] = ()) -> str:
    keys = [k for k in _keys(summaries, block) if k not in skip]
    if not keys:
        return ""
    rows = [[k, *[(s.get(block) or {}).get(k) for s in summaries.values()]] for k in keys]
    return f"## {title}\n\n" + _table(["", *summaries], rows)


def _buckets(summaries: Mapping[str, Summary]) -> str:
    rows = []
    for task in _keys(summaries, "length_buckets"):
        for bucket in ("0-4k", "4-8k", "8k+"):
            cells = [((s.get("length_buckets") or {}).get(task) or {}).get(bucket) for s in summaries.values()]
            if any(c is not None for c in cells):
                rows.append([task, bucket, *cells])
    return "## LongBench-E length buckets\n\n" + _table(["task", "bucket", *summaries], rows) if rows else ""


def _niah(summaries: Mapping[str, Summary]) -> str:
    parts = []
    for variant in _keys(summaries, "niah"):
        grids = [(s.get("niah") or {}).get(variant) for s in summaries.values()]
        lengths = sorted({ln for g in grids if g for ln in g["by_length"]}, key=float)
        rows = [[ln, *[(g["by_length"].get(ln) if g else None) for g in grids]] for ln in lengths]
        rows.append(["mean", *[g["mean"] if g else None for g in grids]])
        parts.append(f"### NIAH {variant}: accuracy by length (mean over depths)\n\n"
                     + _table(["length", *summaries], rows))
        if len(summaries) == 1 and grids[0]:
            g = grids[0]
            grid_rows = [[f"{d:g}", *row] for d, row in zip(g["depths"], g["scores"], strict=True)]
            parts.append(f"### NIAH {variant}: depth x length\n\n"
                         + _table(["depth \\ length", *map(str, g["lengths"])], grid_rows))
    return "\n\n".join(parts)


def _prompting_notes(name: str, summary: Summary) -> list[str]:
    """How the run's LongBench-format tasks were prompted, and whether that is comparable."""
    prompting = (summary.get("run") or {}).get("longbench_prompting") or []
    notes = []
    if "ctxsynth" in prompting:
        notes.append(f"Note: {name} prompts LongBench-format tasks with ctxsynth's own wording; its scores are "
                     "NOT comparable with published LongBench scores (docs/longbench.md: use longbench_official).")
    if "official" in prompting:
        notes.append(f"Note: {name} prompts LongBench tasks in official mode (LongBench's own config files, "
                     "pred.py's truncation and chat rules; docs/longbench.md lists what remains different).")
    return notes


def markdown(summaries: Mapping[str, Summary], title: str = "Evaluation") -> str:
    """All tables for the given runs (dict order = column order)."""
    sections = [
        f"# {title}",
        _tasks(summaries),
        _flat_block(summaries, "paper", "Paper categories and 8-task mean (PAPER.md section 5)",
                    skip=("complete", "missing")),
        _flat_block(summaries, "categories", "LongBench categories present"),
        _buckets(summaries),
        _niah(summaries),
        ruler_report.markdown(summaries),
        longbench_v2.markdown(summaries),
    ]
    for name, s in summaries.items():
        sections.extend(_prompting_notes(name, s))
        paper = s.get("paper")
        if paper and not paper.get("complete"):
            sections.append(f"Note: {name} lacks paper tasks {', '.join(paper['missing'])}; its 8-task mean is partial.")
    return "\n\n".join(x for x in sections if x) + "\n"
