"""Aggregate per-item scores into the numbers a report shows, and render them as markdown.

Input rows are the predictions of one run (dicts with task, metric, score in [0, 1], meta); output
figures are x100. Blocks: per task; LongBench groups present in the run; the paper's three
categories and its 8-task mean (PAPER.md section 5); LongBench-E length buckets; and the NIAH grid
(variant x depth x length) of items scored by "all_substring" that carry variant/length/depth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from statistics import mean
from typing import Any

from ctxsynth.eval import longbench_v2
from ctxsynth.eval.longbench import LENGTH_BUCKETS, PAPER_CATEGORIES, PAPER_TASKS, length_bucket
from ctxsynth.eval.ruler.score import summarize as ruler_summary

Row = Mapping[str, Any]


def _pct(values: Iterable[float]) -> float:
    return round(100 * mean(values), 2)


def is_niah(row: Row) -> bool:
    meta = row.get("meta") or {}
    return row.get("metric") == "all_substring" and all(k in meta for k in ("variant", "length", "depth"))


def task_scores(rows: Sequence[Row]) -> dict[str, dict[str, float]]:
    by_task: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        by_task[row["task"]].append(row["score"])
    return {task: {"score": _pct(v), "n": len(v)} for task, v in sorted(by_task.items())}


def category_scores(rows: Sequence[Row], tasks: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean of task scores per category (each task counts once, whatever its item count)."""
    category_of = {row["task"]: (row.get("meta") or {}).get("category") for row in rows}
    groups: dict[str, list[float]] = defaultdict(list)
    for task, cat in category_of.items():
        if cat:
            groups[cat].append(tasks[task]["score"])
    return {cat: round(mean(v), 2) for cat, v in sorted(groups.items())}


def paper_scores(tasks: Mapping[str, Mapping[str, float]]) -> dict[str, Any] | None:
    """The paper's categories and 8-task mean over whichever of its 8 tasks the run has."""
    present = [t for t in PAPER_TASKS if t in tasks]
    if not present:
        return None
    out: dict[str, Any] = {}
    for cat, members in PAPER_CATEGORIES.items():
        vals = [tasks[t]["score"] for t in members if t in tasks]
        if vals:
            out[cat] = round(mean(vals), 2)
    out["mean"] = round(mean(tasks[t]["score"] for t in present), 2)
    out["complete"] = len(present) == len(PAPER_TASKS)
    out["missing"] = [t for t in PAPER_TASKS if t not in tasks]
    return out


def bucket_scores(rows: Sequence[Row]) -> dict[str, dict[str, float]]:
    """Per task, the mean score in each LongBench-E length bucket (items with a numeric length)."""
    cells: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if is_niah(row):
            continue
        bucket = length_bucket((row.get("meta") or {}).get("length"))
        if bucket:
            cells[row["task"]][bucket].append(row["score"])
    order = [name for name, _, _ in LENGTH_BUCKETS]
    return {
        task: {b: _pct(by[b]) for b in order if by.get(b)} for task, by in sorted(cells.items())
    }


def niah_grids(rows: Sequence[Row]) -> dict[str, dict[str, Any]]:
    """Per variant: sorted lengths and depths, the depth x length score matrix (None where empty),
    cell counts, the mean per length and the overall mean."""
    cells: dict[str, dict[tuple[float, float], list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if is_niah(row):
            meta = row["meta"]
            cells[str(meta["variant"])][(float(meta["length"]), float(meta["depth"]))].append(row["score"])
    grids: dict[str, dict[str, Any]] = {}
    for variant, by_cell in sorted(cells.items()):
        lengths = sorted({k[0] for k in by_cell})
        depths = sorted({k[1] for k in by_cell})
        scores = [[_pct(by_cell[(ln, d)]) if by_cell.get((ln, d)) else None for ln in lengths] for d in depths]
        counts = [[len(by_cell.get((ln, d), [])) for ln in lengths] for d in depths]
        by_length = {}
        for ln in lengths:
            vals = [s for (cell_len, _), v in by_cell.items() if cell_len == ln for s in v]
            by_length[str(_num(ln))] = _pct(vals)
        grids[variant] = {
            "lengths": [_num(x) for x in lengths], "depths": depths, "scores": scores, "n": counts,
            "by_length": by_length, "mean": _pct(s for v in by_cell.values() for s in v),
        }
    return grids


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def summarize(rows: Sequence[Row]) -> dict[str, Any]:
    """Every block the run's rows support; empty blocks are omitted."""
    tasks = task_scores(rows)
    out: dict[str, Any] = {"n_items": len(rows), "tasks": tasks}
    if tasks:
        out["mean_over_tasks"] = round(mean(t["score"] for t in tasks.values()), 2)
    for key, value in (
        ("categories", category_scores(rows, tasks)),
        ("paper", paper_scores(tasks)),
        ("length_buckets", bucket_scores(rows)),
        ("niah", niah_grids(rows)),
        ("ruler", ruler_summary(rows)),
        ("longbench_v2", longbench_v2.summarize(rows)),
    ):
        if value:
            out[key] = value
    return out
