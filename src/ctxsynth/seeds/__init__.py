"""Seeds: human instruction-answer pairs from files (JSONL, Parquet, saved HF datasets) or built-ins.

`read_seeds(SeedsConfig(...))` yields Seed records (and Rejected ones with on_error="reject");
`SEED_SOURCES` names the sources. See readers.py for the error policy and mapping.py for the
field rules.
"""

from __future__ import annotations

from ctxsynth.seeds.builtin import paul_graham_text, wiki_extracts
from ctxsynth.seeds.config import FIELD_NAMES, SeedsConfig
from ctxsynth.seeds.readers import read_seeds
from ctxsynth.seeds.sources import SEED_SOURCES, SeedError

__all__ = ["FIELD_NAMES", "SEED_SOURCES", "SeedError", "SeedsConfig", "paul_graham_text", "read_seeds",
           "wiki_extracts"]
