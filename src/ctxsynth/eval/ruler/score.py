"""RULER's scoring: its postprocessing, its metrics, its table and its effective length.

Per sample, the prediction is postprocessed as RULER's `eval/evaluate.py` does (strip, control
characters to newlines, strip) and scored by the package's own `string_match_all_per_sample` /
`string_match_part_per_sample` (divided by 100: ctxsynth's rows hold scores in [0, 1]). A task's
score at a length is the package's `string_match_all` / `string_match_part` over the cell's
postprocessed predictions: the very number evaluate.py writes to summary.csv.

The table is RULER's (task x length, the average over tasks per length, the mean over lengths),
per template mode. The effective length is RULER's: the longest tested length whose average
exceeds the threshold (Llama-2-7B's 4K score, 85.6), stated with the table. Intervals are 95%
percentile bootstraps over samples (within each task for an average), n per cell shown.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ctxsynth.eval.ruler.tasks import RULER_TASKS, THRESHOLD, THRESHOLD_SOURCE
from ctxsynth.eval.stats import RESAMPLES

Row = Mapping[str, Any]
_CONTROL = re.compile(r"[\x00-\x1f]")
LEVEL = 0.95


def postprocess_pred(prediction: str | None) -> str:
    """evaluate.py's postprocess_pred: None -> "", strip, control characters -> newline, strip."""
    if prediction is None:
        return ""
    return _CONTROL.sub("\n", prediction.strip()).strip()


@functools.lru_cache(maxsize=1)
def _package_metrics() -> dict[str, Callable[..., Any]]:
    from long_context_eval.eval.synthetic import constants

    return {name: getattr(constants, name) for name in (
        "string_match_all", "string_match_all_per_sample", "string_match_part", "string_match_part_per_sample")}


def _per_sample(kind: str, prediction: str, references: Sequence[str]) -> float:
    fn = _package_metrics()[f"{kind}_per_sample"]
    return float(fn([postprocess_pred(prediction)], [list(references)])[0]) / 100


def string_match_all(prediction: str, references: Sequence[str], meta: Mapping[str, Any] | None = None) -> float:
    """Share of the references found in the postprocessed prediction (case-insensitive)."""
    return _per_sample("string_match_all", prediction, references)


def string_match_part(prediction: str, references: Sequence[str], meta: Mapping[str, Any] | None = None) -> float:
    """1.0 when any reference occurs in the postprocessed prediction (case-insensitive)."""
    return _per_sample("string_match_part", prediction, references)


def is_ruler(row: Row) -> bool:
    return isinstance((row.get("meta") or {}).get("ruler"), Mapping)


def task_score(rows: Sequence[Row]) -> float:
    """RULER's task score (0-100, two decimals) of one cell, by the package's metric function."""
    kind = "string_match_part" if rows[0]["metric"] == "ruler_string_match_part" else "string_match_all"
    preds = [postprocess_pred(r.get("prediction")) for r in rows]
    return float(_package_metrics()[kind](preds, [list(r["references"]) for r in rows]))


def _bootstrap_tasks(groups: Sequence[np.ndarray], seed: int = 0) -> tuple[float, float]:
    """Interval of the mean over tasks of per-task means, resampling samples within each task."""
    rng = np.random.default_rng(seed)
    totals = np.zeros(RESAMPLES)
    for values in groups:
        idx = rng.integers(0, values.size, size=(RESAMPLES, values.size))
        totals += values[idx].mean(axis=1)
    means = totals / len(groups)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low) * 100, float(high) * 100


def _cells(rows: Iterable[Row]) -> dict[str, dict[int, dict[str, list[Row]]]]:
    """mode -> length -> task -> rows."""
    out: dict[str, dict[int, dict[str, list[Row]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        if is_ruler(row):
            r = row["meta"]["ruler"]
            out[str(r["mode"])][int(r["length"])][str(r["task"])].append(row)
    return out


def effective_length(averages: Mapping[int, float], threshold: float = THRESHOLD) -> dict[str, Any]:
    """RULER's effective length: the longest tested length whose average exceeds the threshold.
    `beyond` says when the longest tested length itself passes (RULER writes ">128K")."""
    lengths = sorted(averages)
    passing = [n for n in lengths if averages[n] > threshold]
    best = max(passing) if passing else None
    return {"length": best, "beyond": best is not None and best == lengths[-1],
            "gaps": [n for n in lengths if best is not None and n < best and n not in passing]}


def _order(tasks: Iterable[str]) -> list[str]:
    return sorted(tasks, key=lambda t: RULER_TASKS.index(t) if t in RULER_TASKS else len(RULER_TASKS))


def mode_summary(by_length: Mapping[int, Mapping[str, Sequence[Row]]]) -> dict[str, Any]:
    """One template mode's table: per task and length the score, n, interval and nulls; per length
    the average over tasks with its interval; the mean over lengths; the effective length."""
    lengths = sorted(by_length)
    tasks = _order({t for cells in by_length.values() for t in cells})
    table: dict[str, dict[str, Any]] = {t: {} for t in tasks}
    average: dict[str, Any] = {}
    for length in lengths:
        groups = []
        for task in tasks:
            rows = by_length[length].get(task)
            if not rows:
                continue
            values = np.asarray([float(r["score"]) for r in rows])
            low, high = _bootstrap_tasks([values])
            nulls = sum(1 for r in rows if not postprocess_pred(r.get("prediction")))
            table[task][str(length)] = {"score": task_score(rows), "n": len(rows), "low": round(low, 2),
                                        "high": round(high, 2), "nulls": nulls}
            groups.append(values)
        scores = [table[t][str(length)]["score"] for t in tasks if str(length) in table[t]]
        low, high = _bootstrap_tasks(groups)
        average[str(length)] = {"score": round(float(np.mean(scores)), 2), "low": round(low, 2),
                                "high": round(high, 2), "n_tasks": len(scores),
                                "n": sum(table[t][str(length)]["n"] for t in tasks if str(length) in table[t])}
    eff = effective_length({n: average[str(n)]["score"] for n in lengths})
    # the same rule on the interval's ends: how far the effective length can move within the noise
    eff["low"] = effective_length({n: average[str(n)]["low"] for n in lengths})["length"]
    eff["high"] = effective_length({n: average[str(n)]["high"] for n in lengths})["length"]
    return {"lengths": lengths, "tasks": table, "average": average,
            "mean": round(float(np.mean([average[str(n)]["score"] for n in lengths])), 2),
            "complete": set(tasks) == set(RULER_TASKS), "effective_length": eff,
            "threshold": THRESHOLD, "threshold_source": THRESHOLD_SOURCE}


def summarize(rows: Sequence[Row]) -> dict[str, Any]:
    """The `ruler` block of scores.json: mode -> mode_summary (empty when no row is a RULER item)."""
    return {mode: mode_summary(by_length) for mode, by_length in sorted(_cells(rows).items())}
