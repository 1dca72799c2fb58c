"""Typed configuration of NIAH data: instruction difficulty, context composition, lengths, depths.

One `NiahConfig` describes a whole build (training samples and/or test grids); YAML files under
configs/pilot/ map one-to-one onto these dataclasses. Validation happens at construction so a bad
config fails before any tokenizer is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VARIANTS = ("single", "multi_key", "multi_query", "multi_value")
COMPOSITIONS = ("needle_only", "essay", "noise", "wiki")
NEEDLE_FORMATS = ("words", "numbers", "uuids")


def _check_depths(depths: list[float], where: str) -> None:
    bad = [d for d in depths if not 0.0 <= d <= 1.0]
    if bad:
        raise ValueError(f"{where}: depths must lie in [0, 1], got {bad}")


def _check_lengths(lengths: list[int], where: str) -> None:
    if not lengths or any(n < 64 for n in lengths):
        raise ValueError(f"{where}: give at least one length, each >= 64 tokens, got {lengths}")


@dataclass
class TrainSpec:
    """Training samples: `samples_per_variant` per variant, lengths and depths cycled per sample.

    Sample i uses lengths[i % len(lengths)]; its gold needle goes to depths[(i // len(lengths)) %
    len(depths)], or to a uniform random depth when `depths` is empty.
    """

    samples_per_variant: int = 200
    lengths: list[int] = field(default_factory=lambda: [1024])
    depths: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.samples_per_variant < 0:
            raise ValueError("train.samples_per_variant must be >= 0")
        _check_lengths(self.lengths, "train.lengths")
        _check_depths(self.depths, "train.depths")


@dataclass
class TestSpec:
    """A test grid: every (length, depth) cell gets `samples_per_cell` items per variant."""

    __test__ = False  # not a pytest test class, despite the name

    lengths: list[int] = field(default_factory=lambda: [1024, 2048, 4096, 8192])
    depths: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    samples_per_cell: int = 20
    max_new_tokens: int = 128
    # True: a length is the model window an item needs, i.e. prompt + max_new_tokens of generation
    # (the rendered chat with the gold answer is fitted to length - max_new_tokens), so a model whose
    # window is the length runs every item untruncated. False: lengths count the rendered chat with
    # the gold answer, as training samples do.
    reserve_generation: bool = True

    def __post_init__(self) -> None:
        if self.samples_per_cell < 1 or self.max_new_tokens < 1:
            raise ValueError("test.samples_per_cell and test.max_new_tokens must be >= 1")
        _check_lengths(self.lengths, "test.lengths")
        if not self.depths:
            raise ValueError("test.depths: a test grid needs at least one depth")
        _check_depths(self.depths, "test.depths")


@dataclass
class NiahConfig:
    """Everything that decides the NIAH data; the same config and seed give the same bytes.

    Lengths are counted in tokens of `tokenizer` over the whole rendered chat (chat template, user
    turn and the gold answer), so the answer always fits. `composition` "needle_only" ignores
    lengths: the context is the needle sentences alone.
    """

    tokenizer: str = "smollm2"
    seed: int = 0
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    composition: str = "essay"
    key_format: str = "words"
    value_format: str = "numbers"
    num_keys: int = 4  # multi_key: keys in the context, one asked, the rest distract
    num_values: int = 4  # multi_value: values stored under the one asked key
    num_queries: int = 4  # multi_query: keys asked at once
    distractor_needles: int = 0  # extra needles with other keys, for any variant
    train: TrainSpec | None = field(default_factory=TrainSpec)
    test: TestSpec | None = None
    export_formats: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants must be distinct names from {VARIANTS}, got {self.variants}")
        if self.composition not in COMPOSITIONS:
            raise ValueError(f"composition must be one of {COMPOSITIONS}, got {self.composition!r}")
        for name in ("key_format", "value_format"):
            if getattr(self, name) not in NEEDLE_FORMATS:
                raise ValueError(f"{name} must be one of {NEEDLE_FORMATS}, got {getattr(self, name)!r}")
        if min(self.num_keys, self.num_values, self.num_queries) < 1 or self.distractor_needles < 0:
            raise ValueError("num_keys, num_values, num_queries must be >= 1 and distractor_needles >= 0")

    def max_length(self) -> int:
        """The longest target length of this build (0 when no haystack is needed)."""
        if self.composition == "needle_only":
            return 0
        lengths = [*(self.train.lengths if self.train else []), *(self.test.lengths if self.test else [])]
        return max(lengths, default=0)
