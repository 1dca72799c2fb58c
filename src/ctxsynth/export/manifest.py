"""The manifest every export folder ends with: what is in it, how long it is, where it came from.

It is written after the data files, so its presence means the folder is complete; the sha256 of
each file lets a reader check that nothing changed since. No timestamps: equal inputs give equal
bytes.
"""

from __future__ import annotations

import hashlib
import statistics
from array import array
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ctxsynth.export.rows import ExportRow

MANIFEST_NAME = "manifest.json"


def _summary(values: Sequence[int | float] | array[Any]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"min": ordered[0], "mean": round(statistics.fmean(ordered), 2),
            "median": statistics.median(ordered), "p90": p90, "max": ordered[-1], "sum": sum(ordered)}


class _Column:
    """Numbers of one statistic, 8 bytes each (ints in an array; a float turns it into a list)."""

    def __init__(self, typecode: str = "q") -> None:
        self.values: array[Any] | list[int | float] = array(typecode)

    def append(self, value: int | float) -> None:
        if isinstance(self.values, array) and self.values.typecode == "q" and not isinstance(value, int):
            self.values = list(self.values)
        self.values.append(value)


class RowStats:
    """What a manifest says about its rows, gathered one row at a time (counts, token statistics)."""

    KEYS = ("total", "target", "prompt", "answer")

    def __init__(self) -> None:
        self.sources: Counter[str] = Counter()
        self.tasks: Counter[str] = Counter()
        self.tokenizers: set[str] = set()
        self.columns = {key: _Column() for key in self.KEYS}
        self.n_with_total = 0
        self.within_target = 0
        self.pairs = 0
        self.fill_ratio = _Column("d")

    def add(self, row: ExportRow) -> None:
        self.sources[row.source] += 1
        s = row.sample
        if s is None:
            return
        self.tasks[s.task] += 1
        self.tokenizers.add(s.tokenizer)
        for key in self.KEYS:
            value = s.tokens.get(key)
            if isinstance(value, int | float):
                self.columns[key].append(value)
        if "total" in s.tokens:
            self.n_with_total += 1
            if s.tokens.get("target"):
                total, target = s.tokens["total"], s.tokens["target"]
                self.pairs += 1
                self.within_target += total <= target
                self.fill_ratio.append(round(total / target, 4))

    def token_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"tokenizers": sorted(self.tokenizers)}
        for key in self.KEYS:
            stats[key] = _summary(self.columns[key].values)
        stats["n_with_total"] = self.n_with_total
        if self.pairs:
            stats["within_target"] = self.within_target
            stats["fill_ratio"] = _summary(self.fill_ratio.values)
        return stats


def token_stats(rows: Sequence[ExportRow]) -> dict[str, Any]:
    """Statistics of Sample.tokens over the long rows (general rows carry no counts)."""
    stats = RowStats()
    for row in rows:
        stats.add(row)
    return stats.token_stats()


def file_entry(name: str, data: bytes, n_rows: int | None) -> dict[str, Any]:
    return {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "rows": n_rows}


def manifest_of(fmt: str, stats: RowStats, entries: list[dict[str, Any]], *, config_hash: str,
                tokenizer_name: str, seed: int, mix: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest of a format folder from its row statistics and its file entries (sorted by path)."""
    return {
        "format": fmt,
        "config_hash": config_hash,
        "tokenizer": tokenizer_name,
        "seed": seed,
        "counts": {"total": sum(stats.sources.values()), "long": stats.sources.get("long", 0),
                   "general": stats.sources.get("general", 0), "per_task": dict(sorted(stats.tasks.items()))},
        "mix": mix,
        "tokens": stats.token_stats(),
        "files": sorted(entries, key=lambda e: e["path"]),
    }
