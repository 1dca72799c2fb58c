"""The filter registry: every filter is one `check(seeds) -> verdicts` object, found by name.

`FILTERS` maps a filter section name to a factory `from_config(config, context) -> list[Filter]`
(empty when the section is disabled; dedup may give two checks, seeds and contexts). The run order
is the registration order, cheapest first, and each filter sees the survivors of the ones before.
Adding a filter: its module (the check, its `global_pass` and its `from_config`), its config
section in ctxsynth.filters.config, and one `FILTERS.register` line here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ctxsynth.filters.verdict import Verdict
from ctxsynth.llm.base import Backend
from ctxsynth.records import Seed
from ctxsynth.registry import Registry

if TYPE_CHECKING:
    from ctxsynth.filters.config import FilterLLM, FiltersConfig


class Filter(Protocol):
    name: str
    # True for a filter that must see every record, in order (dedup: the first of a group wins); the
    # filter stage runs the filters up to the last global one in its driver pass, the rest per shard
    global_pass: bool

    def check(self, seeds: Sequence[Seed]) -> list[Verdict]:
        """One verdict per seed, in order: keep, or drop with a reason."""
        ...


@dataclass
class FilterContext:
    """What a filter may need beyond its config section: the run seed, a chat backend, caches."""

    run_seed: int = 0
    backend: Backend | None = None  # the runner's cached backend; None: each section's `llm` is built
    cache_dir: Path | None = None  # where cache.sqlite and scores.sqlite live; None caches nothing
    built: list[Backend] = field(default_factory=list)  # backends built here, closed by the caller
    max_consecutive_failures: int | None = None  # circuit breaker on built backends (None: none)
    work_dir: Path | None = None  # where stateful filters (dedup) keep their on-disk index; None: a temp folder

    def chat(self, spec: FilterLLM) -> Backend:
        if self.backend is not None:
            return self.backend
        cache = self.cache_dir / "cache.sqlite" if self.cache_dir else None
        self.built.append(spec.build(cache, self.max_consecutive_failures))
        return self.built[-1]


Factory = Callable[["FiltersConfig", FilterContext], list[Filter]]
FILTERS = Registry("filter")
FILTERS.register("wellformed", "ctxsynth.filters.wellformed:from_config")
FILTERS.register("dedup", "ctxsynth.filters.dedup:from_config")
FILTERS.register("decontam", "ctxsynth.filters.decontam:from_config")
FILTERS.register("closed_book", "ctxsynth.filters.closed_book:from_config")
FILTERS.register("judge", "ctxsynth.filters.judge:from_config")
FILTERS.register("reliance", "ctxsynth.filters.reliance:from_config")


def build_filters(config: FiltersConfig, context: FilterContext) -> list[Filter]:
    """The enabled filters, in run order."""
    filters: list[Filter] = []
    for name in FILTERS.in_order():
        factory: Factory = FILTERS.get(name)
        filters.extend(factory(config, context))
    return filters
