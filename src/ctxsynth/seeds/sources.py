"""The seed-source registry and the small types every source shares.

A source is a function `(config, base_dir) -> Iterator[Candidate]`: it turns its input into seeds
or rejections, each with the place it came from. `read_seeds` then removes duplicates, applies the
on_error policy and the limit/offset/sample selection, so every source gets these for free.
Sources are registered as "module:function" strings, so reading seeds imports no optional
dependency (`datasets`) unless that source is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctxsynth.errors import SeedError as SeedError  # re-exported: the seed readers raise it
from ctxsynth.records import Rejected, Seed
from ctxsynth.registry import Registry


@dataclass(frozen=True)
class Location:
    """Where a record came from: a file (as given) and its 1-based line or row number."""

    path: str
    line: int
    unit: str = "line"  # "line" for JSONL, "row" for Parquet and datasets, "record" for built-ins

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"

    def describe(self) -> str:
        return f"{self.path}, {self.unit} {self.line}"


@dataclass
class Candidate:
    """One input record after parsing: a Seed, or a Rejected with the full error message.

    `raw` is the input record as read (JSON-safe), kept for the rejected/ file of duplicates.
    """

    item: Seed | Rejected
    where: Location
    raw: dict[str, Any] | None = None
    message: str | None = None  # for a Rejected: what SeedError would say with on_error="raise"


SEED_SOURCES = Registry("seed source")
SEED_SOURCES.register("jsonl", "ctxsynth.seeds.readers:jsonl_source")
SEED_SOURCES.register("parquet", "ctxsynth.seeds.readers:parquet_source")
SEED_SOURCES.register("hf_disk", "ctxsynth.seeds.readers:hf_disk_source")
SEED_SOURCES.register("hub", "ctxsynth.seeds.hub:hub_source")
SEED_SOURCES.register("squad", "ctxsynth.seeds.builtin:squad_source")
SEED_SOURCES.register("hotpotqa", "ctxsynth.seeds.builtin:hotpotqa_source")

FILE_SOURCES = frozenset({"jsonl", "parquet", "hf_disk", "hub"})
