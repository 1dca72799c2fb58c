"""`SeedsConfig`: where the seed pairs come from and how input columns map onto `Seed` fields.

A plain dataclass with defaults (the run config nests it under `seeds:`), checked by `validate()`
so that `ctxsynth validate` reports a bad source name, field name or option before any file is read.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from ctxsynth.registry import RegistryError
from ctxsynth.seeds.sources import FILE_SOURCES, SEED_SOURCES, SeedError

# Seed fields an input column can be mapped to; "meta" takes a dict column merged into Seed.meta.
FIELD_NAMES = ("id", "instruction", "answer", "context", "task", "meta")
REQUIRED_FIELDS = ("instruction", "answer")
ON_ERROR = ("raise", "reject")


@dataclass
class SeedsConfig:
    """Seed input options.

    source: "jsonl" | "parquet" | "hf_disk" (a `datasets.save_to_disk` folder) | "hub" (a Hugging Face
        Hub dataset id, through `datasets.load_dataset`; ctxsynth.seeds.hub) | "squad" | "hotpotqa".
    path: input file or folder of the file sources (relative paths resolve against `base_dir`: the
        directory ctxsynth runs from); the dataset id for "hub".
    split: which split of a saved DatasetDict (hf_disk: may be left out when there is one; hub: "train"
        unless set).
    subset: the configuration of a multi-config Hub dataset (hub only).
    fields: Seed field -> input column; unnamed fields use their own name. Dotted paths reach into
        nested values ("answers.text"; through a list of dicts they collect one value per item).
        id, context, task and meta are optional unless named here, then every record must have them.
    task: task name for records without a task column; built-ins default to their own task.
    limit/offset: keep `limit` seeds after skipping `offset` seeds (bad records are never counted).
    sample_seed: None keeps the first seeds in file order; an int draws a seeded random sample of
        `limit` seeds (emitted in file order).
    on_error: "raise" stops at the first bad record with SeedError; "reject" yields Rejected records.
    max_chars: seeds longer than this (instruction + answers + context) are rejected as too_long
        whatever on_error says; null = no limit.
    """

    source: str = "squad"
    path: str | None = None
    split: str | None = None
    subset: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    task: str = ""
    limit: int | None = None
    offset: int = 0
    sample_seed: int | None = None
    on_error: str = "raise"
    # longest seed (instruction + answers + context, in characters); longer ones are rejected as
    # too_long (a seed is a short pair, at most with its source passage); null = no limit
    max_chars: int | None = 100_000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise SeedError naming the option and the fix for any inconsistent setting."""
        try:
            SEED_SOURCES.get(self.source)
        except RegistryError as e:
            raise SeedError(f"seeds.source: {e}") from None
        if self.on_error not in ON_ERROR:
            raise SeedError(f"seeds.on_error must be one of {', '.join(ON_ERROR)}, not {self.on_error!r}")
        self._validate_fields()
        self._validate_selection()
        if self.source in FILE_SOURCES:
            if not self.path:
                raise SeedError(f"seeds.path is required for source {self.source!r}: set it to the input file")
        else:
            for name in ("path", "split"):
                if getattr(self, name) is not None:
                    raise SeedError(f"seeds.{name} is not used by the built-in source {self.source!r}; remove it")
            if self.fields:
                raise SeedError(f"seeds.fields is not used by the built-in source {self.source!r}; remove it")
        if self.split is not None and self.source not in ("hf_disk", "hub"):
            raise SeedError(f"seeds.split applies to sources 'hf_disk' and 'hub' only, not {self.source!r}; remove it")
        if self.subset is not None and self.source != "hub":
            raise SeedError(f"seeds.subset applies to source 'hub' only, not {self.source!r}; remove it")

    def _validate_fields(self) -> None:
        for name, column in self.fields.items():
            if name not in FIELD_NAMES:
                close = difflib.get_close_matches(name, FIELD_NAMES, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise SeedError(f"seeds.fields: unknown seed field {name!r}.{hint} Known: {', '.join(FIELD_NAMES)}")
            if not isinstance(column, str) or not column.strip():
                raise SeedError(f"seeds.fields.{name} must name an input column, got {column!r}")

    def _validate_selection(self) -> None:
        if self.max_chars is not None and self.max_chars < 1:
            raise SeedError(f"seeds.max_chars must be >= 1 or null, not {self.max_chars}")
        if self.limit is not None and self.limit < 0:
            raise SeedError(f"seeds.limit must be >= 0 or null, not {self.limit}")
        if self.offset < 0:
            raise SeedError(f"seeds.offset must be >= 0, not {self.offset}")
        if self.sample_seed is not None and self.limit is None:
            raise SeedError("seeds.sample_seed draws a sample of seeds.limit seeds: set seeds.limit too")

    def column(self, name: str) -> str:
        """The input column mapped to a Seed field (the field's own name unless mapped)."""
        return self.fields.get(name, name)

    def is_required(self, name: str) -> bool:
        return name in REQUIRED_FIELDS or name in self.fields
