"""`apply_filters`: the filter stage between seeds and synthesis, as one library call.

Filters run cheapest first, each on the survivors of the one before: well-formedness, dedup,
decontamination, closed-book probe, judge, context reliance. Every drop becomes a `Rejected`
record (stage "filter") with its reason and detail; every count becomes a stat (`dropped_<reason>`);
kept seeds carry each filter's measured scores under `meta["filters"][<filter>]`.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ctxsynth.filters.config import FiltersConfig
from ctxsynth.filters.registry import FilterContext, build_filters
from ctxsynth.filters.verdict import Verdict
from ctxsynth.llm.base import Backend
from ctxsynth.records import Rejected, Seed, to_dict

log = logging.getLogger(__name__)
STAGE = "filter"
Check = Callable[[Sequence[Seed]], list[Verdict]]


def _mark(seed: Seed, name: str, verdict: Verdict) -> Seed:
    marks = dict(seed.meta.get("filters", {}))
    marks[name] = {**verdict.scores, **({"detail": verdict.detail} if verdict.detail else {})}
    return replace(seed, meta={**seed.meta, "filters": marks})


def apply_filters(seeds: list[Seed], config: FiltersConfig, run_seed: int, *, backend: Backend | None = None,
                  cache_dir: Path | None = None, max_consecutive_failures: int | None = None,
                  ) -> tuple[list[Seed], list[Rejected], dict[str, Any]]:
    """Run the enabled filters; returns (kept seeds in input order, rejected records, stats).

    backend: the chat backend for the closed-book probe and the judge (the runner's cached one);
    None builds each section's `llm`. cache_dir: where cache.sqlite (LLM requests, when building
    the backend here) and scores.sqlite (reliance scores) live; None caches nothing.
    max_consecutive_failures: a circuit breaker on the backends built here (ctxsynth.llm.breaker).
    The filter stage runs the same checks shard by shard instead (ctxsynth.filters.stage).
    """
    built: list[Backend] = []
    context = FilterContext(run_seed, backend, cache_dir, built, max_consecutive_failures)
    filters = build_filters(config, context)
    try:
        tally = Tally([f.name for f in filters])
        kept, rejected = run_checks([(f.name, f.check) for f in filters], seeds, tally)
    finally:
        close_filters(filters, built)
    stats: dict[str, Any] = {"in": len(seeds), **tally.stats()}
    stats.update({f"dropped_{r}": n for r, n in sorted(tally.reasons.items())})
    stats["kept"] = len(kept)
    stats.update(reliance_summary(kept))
    return kept, [r for name in tally.names for r in rejected[name]], stats


def close_filters(filters: Sequence[Any], built: Sequence[Backend]) -> None:
    """Close stateful filters (their on-disk indexes) and the backends built for them."""
    for f in filters:
        close = getattr(f, "close", None)
        if callable(close):
            close()
    for b in built:
        b.close()


class Tally:
    """Per-filter seconds and drops, and drops per reason, summed over the batches checked."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.seconds = dict.fromkeys(self.names, 0.0)
        self.dropped = dict.fromkeys(self.names, 0)
        self.reasons: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.names:
            out[f"seconds_{name}"] = round(self.seconds[name], 3)
            out[f"dropped_by_{name}"] = self.dropped[name]
        return out


def run_checks(checks: Sequence[tuple[str, Check]], seeds: list[Seed], tally: Tally
               ) -> tuple[list[Seed], dict[str, list[Rejected]]]:
    """Each check on the survivors of the ones before; (kept, rejected records by check name)."""
    kept = list(seeds)
    rejected: dict[str, list[Rejected]] = {name: [] for name, _ in checks}
    for name, check in checks:
        start = time.perf_counter()
        verdicts = check(kept) if kept else []
        survivors = []
        for seed, verdict in zip(kept, verdicts, strict=True):
            marked = _mark(seed, name, verdict)
            if verdict.keep:
                survivors.append(marked)
            else:
                tally.reasons[verdict.reason or "unknown"] += 1
                rejected[name].append(Rejected(seed.id, STAGE, verdict.reason or "unknown", verdict.detail,
                                               to_dict(marked)))
        tally.seconds[name] += round(time.perf_counter() - start, 3)
        tally.dropped[name] += len(kept) - len(survivors)
        log.debug("filter %s: %d in, %d dropped", name, len(kept), len(kept) - len(survivors))
        kept = survivors
    return kept, rejected


def reliance_summary(seeds: Sequence[Seed]) -> dict[str, Any]:
    return reliance_stats([s.meta["filters"]["reliance"]["reliance"] for s in seeds
                           if "reliance" in s.meta.get("filters", {}).get("reliance", {})])


def reliance_stats(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {}
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"reliance_n": len(values), "reliance_mean": round(statistics.fmean(values), 4),
            "reliance_q1": round(q[0], 4), "reliance_median": round(q[1], 4), "reliance_q3": round(q[2], 4)}
