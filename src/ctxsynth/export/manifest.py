"""The manifest every export folder ends with: what is in it, how long it is, where it came from.

It is written after the data files, so its presence means the folder is complete; the sha256 of
each file lets a reader check that nothing changed since. No timestamps: equal inputs give equal
bytes.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ctxsynth.export.rows import ExportRow

MANIFEST_NAME = "manifest.json"


def _summary(values: Sequence[int | float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"min": ordered[0], "mean": round(statistics.fmean(ordered), 2),
            "median": statistics.median(ordered), "p90": p90, "max": ordered[-1], "sum": sum(ordered)}


def token_stats(rows: Sequence[ExportRow]) -> dict[str, Any]:
    """Statistics of Sample.tokens over the long rows (general rows carry no counts)."""
    samples = [row.sample for row in rows if row.sample is not None]
    totals = [s.tokens["total"] for s in samples if "total" in s.tokens]
    pairs = [(s.tokens["total"], s.tokens["target"]) for s in samples
             if s.tokens.get("target") and "total" in s.tokens]
    stats: dict[str, Any] = {"tokenizers": sorted({s.tokenizer for s in samples})}
    for key in ("total", "target", "prompt", "answer"):
        stats[key] = _summary([s.tokens[key] for s in samples if isinstance(s.tokens.get(key), int | float)])
    stats["n_with_total"] = len(totals)
    if pairs:
        stats["within_target"] = sum(total <= target for total, target in pairs)
        stats["fill_ratio"] = _summary([round(total / target, 4) for total, target in pairs])
    return stats


def file_entry(name: str, data: bytes, n_rows: int | None) -> dict[str, Any]:
    return {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "rows": n_rows}


def build_manifest(fmt: str, rows: Sequence[ExportRow], files: dict[str, bytes], *, config_hash: str,
                   tokenizer_name: str, seed: int, mix: dict[str, Any] | None,
                   data_files: Sequence[str]) -> dict[str, Any]:
    sources = Counter(row.source for row in rows)
    tasks = Counter(row.sample.task for row in rows if row.sample is not None)
    return {
        "format": fmt,
        "config_hash": config_hash,
        "tokenizer": tokenizer_name,
        "seed": seed,
        "counts": {"total": len(rows), "long": sources.get("long", 0), "general": sources.get("general", 0),
                   "per_task": dict(sorted(tasks.items()))},
        "mix": mix,
        "tokens": token_stats(rows),
        "files": [file_entry(name, files[name], len(rows) if name in data_files else None)
                  for name in sorted(files)],
    }
