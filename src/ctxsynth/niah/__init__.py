"""Controlled needle-in-a-haystack data: the pilot study's training samples and test grids.

Four variants (single, multi_key, multi_query, multi_value), four context compositions
(needle_only, essay, noise, wiki), exact token budgets with the chat template applied, depth
control, three needle formats and disjoint train/test needle spaces. Start with `build_niah`.
"""

from ctxsynth.niah.build import build_niah, build_test_items, build_train_samples
from ctxsynth.niah.config import COMPOSITIONS, NEEDLE_FORMATS, VARIANTS, NiahConfig, TestSpec, TrainSpec
from ctxsynth.niah.needles import needle_split

__all__ = [
    "COMPOSITIONS", "NEEDLE_FORMATS", "VARIANTS", "NiahConfig", "TestSpec", "TrainSpec",
    "build_niah", "build_test_items", "build_train_samples", "needle_split",
]
