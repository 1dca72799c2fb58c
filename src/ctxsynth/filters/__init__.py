"""Filters between seeds and synthesis: which pairs need a context, which are ill-posed, duplicated
or contaminated. Each filter answers a batch with one `Verdict` per record; `apply_filters` runs
them as a pipeline stage and returns kept seeds, `Rejected` records and stats.
"""

from __future__ import annotations

from ctxsynth.filters.config import (
    ClosedBookConfig,
    DecontamConfig,
    DedupConfig,
    FilterLLM,
    FiltersConfig,
    JudgeConfig,
    RelianceConfig,
    WellFormedConfig,
)
from ctxsynth.filters.pipeline import apply_filters
from ctxsynth.filters.reliance import score_synthesized
from ctxsynth.filters.verdict import Verdict

__all__ = ["ClosedBookConfig", "DecontamConfig", "DedupConfig", "FilterLLM", "FiltersConfig", "JudgeConfig",
           "RelianceConfig", "Verdict", "WellFormedConfig", "apply_filters", "score_synthesized"]
