"""Mixing the long-context samples with a general SFT file at an exact, documented ratio.

The paper trains on its long data mixed into general chat data (ShareGPT, UltraChat). `MixConfig.ratio`
is the count ratio general:long: with n long samples the export holds exactly round(ratio * n)
general records, drawn without replacement from the file (with `repeat=True` the file is cycled,
each pass in a fresh seeded order, when it is too small). The merged list is shuffled with the
export seed, so the same seed and inputs always give the same bytes.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxsynth.errors import ConfigError, InputError
from ctxsynth.export.rows import ExportRow, check_messages
from ctxsynth.io import read_user_jsonl

log = logging.getLogger(__name__)

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "model": "assistant", "system": "system"}


@dataclass(frozen=True)
class MixConfig:
    """Mix a general SFT file (JSONL/JSON of {"messages"} or sharegpt {"conversations"}).

    `ratio` = general records per long sample (2.0 -> two general records for each long one;
    0.5 -> one per two). Use `from_fraction` to give the share of long samples instead.
    """

    path: Path
    ratio: float
    repeat: bool = False  # cycle the general file when it holds fewer records than needed

    def __post_init__(self) -> None:
        if not self.ratio >= 0:
            raise ConfigError(f"mix ratio must be >= 0 (general:long count ratio), got {self.ratio}")

    @classmethod
    def from_fraction(cls, path: Path, long_fraction: float, repeat: bool = False) -> MixConfig:
        """`long_fraction` = share of long samples in the mixed export, in (0, 1]."""
        if not 0 < long_fraction <= 1:
            raise ConfigError(f"long_fraction must be in (0, 1], got {long_fraction}")
        return cls(Path(path), (1.0 - long_fraction) / long_fraction, repeat)

    def n_general(self, n_long: int) -> int:
        return round(self.ratio * n_long)


@dataclass
class GeneralFile:
    rows: list[ExportRow]
    skipped: Counter[str] = field(default_factory=Counter)


def _records(path: Path) -> Iterator[dict[str, Any]]:
    if path.name.endswith(".json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise InputError(f"{path}: a .json general file must hold a list of records")
        yield from data
        return
    for _, record in read_user_jsonl(path):
        yield record


def _messages(record: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in record:
        return list(record["messages"])
    if "conversations" in record:
        out = [{"role": "system", "content": record["system"]}] if record.get("system") else []
        for turn in record["conversations"]:
            if "from" in turn:
                role = SHAREGPT_ROLES.get(str(turn["from"]).lower())
                if role is None:
                    raise InputError(f"unknown sharegpt speaker {turn['from']!r}")
                out.append({"role": role, "content": turn.get("value")})
            else:
                out.append({"role": turn.get("role"), "content": turn.get("content")})
        return out
    raise InputError("record has neither 'messages' nor 'conversations'")


def load_general(path: Path) -> GeneralFile:
    """Read every usable conversation; unusable ones are counted by reason and logged, not fatal."""
    general = GeneralFile(rows=[])
    for i, record in enumerate(_records(Path(path))):
        where = f"{path}:{i + 1}"
        try:
            messages = check_messages(_messages(record), where)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            general.skipped[type(exc).__name__] += 1
            log.debug("skipping general record %s: %s", where, exc)
            continue
        rid = str(record.get("id", f"general-{i:07d}"))
        general.rows.append(ExportRow(id=rid, messages=tuple(messages), source="general"))
    if general.skipped:
        log.warning("%s: skipped %d unusable general records", path, sum(general.skipped.values()))
    return general


def draw_indices(n_available: int, n_needed: int, rng: random.Random, repeat: bool) -> list[int]:
    if n_needed <= n_available:
        return rng.sample(range(n_available), n_needed)
    if not repeat or n_available == 0:
        raise InputError(
            f"the mix needs {n_needed} general records but the file has {n_available} usable ones; "
            "lower the ratio or set repeat=True to cycle the file"
        )
    out: list[int] = []
    while len(out) < n_needed:
        out.extend(rng.sample(range(n_available), n_available))
    return out[:n_needed]


def plan_mix(n_long: int, mix: MixConfig, seed: int) -> tuple[list[int], list[ExportRow], dict[str, Any]]:
    """(order, general rows, info): row k of the mixed export is row order[k] of the n_long long rows
    followed by the general rows; exactly mix.n_general(n_long) general rows, shuffled by seed."""
    general = load_general(mix.path)
    rng = random.Random(f"ctxsynth-mix:{seed}")
    n_needed = mix.n_general(n_long)
    picked = [general.rows[i] for i in draw_indices(len(general.rows), n_needed, rng, mix.repeat)]
    order = list(range(n_long + len(picked)))
    rng.shuffle(order)  # the permutation shuffling the rows themselves would apply
    info = {"path": str(mix.path), "ratio_general_per_long": mix.ratio, "repeat": mix.repeat,
            "n_long": n_long, "n_general": len(picked), "general_available": len(general.rows),
            "general_skipped": dict(general.skipped)}
    return order, picked, info


def mix_rows(long_rows: Sequence[ExportRow], mix: MixConfig, seed: int) -> tuple[list[ExportRow], dict]:
    """The long rows plus exactly mix.n_general(len(long_rows)) general rows, shuffled by seed."""
    order, picked, info = plan_mix(len(long_rows), mix, seed)
    rows = list(long_rows) + picked
    return [rows[i] for i in order], info
