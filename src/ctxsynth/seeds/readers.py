"""`read_seeds`: seeds from any registered source, with no duplicates and no silent skips.

The pipeline is: source -> (Seed | Rejected candidates) -> duplicate-id check -> on_error policy
-> limit/offset/sample selection. With on_error="raise" the first bad record stops the read with
a SeedError naming file, line, field and the fix; with "reject" it is yielded as
Rejected(stage="seeds", reason=...), reason one of malformed_json, missing_field, empty_field,
bad_type, invalid_utf8, duplicate_id. A rejected record whose id cannot be read gets the id
"<file name>:<line>". limit and offset count seeds only; rejections are always yielded.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ctxsynth.records import Rejected, Seed, to_dict
from ctxsynth.seeds.config import FIELD_NAMES, SeedsConfig
from ctxsynth.seeds.mapping import BadRecord, lookup, record_to_seed
from ctxsynth.seeds.rows import Row, hf_disk_rows, jsonl_rows, parquet_rows
from ctxsynth.seeds.seen import SeenIds
from ctxsynth.seeds.sources import SEED_SOURCES, Candidate, Location, SeedError

logger = logging.getLogger(__name__)

STAGE = "seeds"
HINT_REJECT = "or set seeds.on_error=reject to send bad records to rejected/"


def read_seeds(config: SeedsConfig, base_dir: Path | None = None) -> Iterator[Seed | Rejected]:
    """Seeds (and, with on_error="reject", Rejected records) of the configured source, in input order."""
    config.validate()
    source = SEED_SOURCES.get(config.source)
    checked = _checked(source(config, base_dir), config)
    if config.sample_seed is None:
        selected = _first(checked, config.offset, config.limit)
    else:
        selected = _sampled(checked, config.offset, config.limit or 0, config.sample_seed)
    counts: Counter[str] = Counter()
    for item in selected:
        counts["seeds" if isinstance(item, Seed) else f"rejected_{item.reason}"] += 1
        yield item
    logger.info("seeds from %s: %s", config.path or config.source, dict(sorted(counts.items())))


def resolve_path(config: SeedsConfig, base_dir: Path | None) -> Path:
    path = Path(config.path or "").expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path


# --- file sources -------------------------------------------------------------------------------


def jsonl_source(config: SeedsConfig, base_dir: Path | None) -> Iterator[Candidate]:
    return candidates(jsonl_rows(resolve_path(config, base_dir)), config)


def parquet_source(config: SeedsConfig, base_dir: Path | None) -> Iterator[Candidate]:
    path = resolve_path(config, base_dir)
    return candidates(parquet_rows(path, check_columns=_column_check(config, path)), config)


def hf_disk_source(config: SeedsConfig, base_dir: Path | None) -> Iterator[Candidate]:
    path = resolve_path(config, base_dir)
    return candidates(hf_disk_rows(path, config.split, check_columns=_column_check(config, path)), config)


def _column_check(config: SeedsConfig, path: Path) -> Callable[[list[str]], None]:
    """Tabular files have a schema: a required or mapped column that is absent is one error, not
    one rejection per row."""
    def check(columns: list[str]) -> None:
        for name in FIELD_NAMES:
            if not config.is_required(name):
                continue
            column = config.column(name)
            if column in columns or column.split(".")[0] in columns:
                continue
            mapped = f"seeds.fields.{name}={column}" if name in config.fields else f"the {name!r} field"
            raise SeedError(f"{path}: no column {column!r} for {mapped}; columns: {', '.join(columns)}. "
                            f"Map the right one with seeds.fields.{name}=<column>")
    return check


def candidates(rows: Iterable[Row], config: SeedsConfig) -> Iterator[Candidate]:
    for row in rows:
        if row.data is None:
            raw = {"raw": row.raw_text}
            yield _rejection(row.where, None, raw, row.reason or "malformed_json", "the record",
                             row.problem or "unreadable", row.fix or "repair the record")
            continue
        try:
            seed = record_to_seed(row.data, config, row.where)
        except BadRecord as bad:
            raw = _json_safe(row.data)
            yield _rejection(row.where, _raw_id(row.data, config), raw, bad.reason, bad.field, bad.problem,
                             bad.fix)
            continue
        yield Candidate(seed, row.where, raw=row.data)


def _rejection(where: Location, record_id: str | None, raw: dict[str, Any], reason: str, field: str,
               problem: str, fix: str) -> Candidate:
    detail = f"{where} field {field!r}: {problem}"
    message = f"{where.describe()}, field {field!r}: {problem}. Fix: {fix}, {HINT_REJECT}."
    if field == "the record":
        detail = f"{where}: {problem}"
        message = f"{where.describe()}: {problem}. Fix: {fix}, {HINT_REJECT}."
    rejected = Rejected(id=record_id or f"{Path(where.path).name}:{where.line}", stage=STAGE, reason=reason,
                        detail=detail, record=raw)
    return Candidate(rejected, where, raw=raw, message=message)


def _raw_id(data: dict[str, Any], config: SeedsConfig) -> str | None:
    """The record's own id when it can be read, to name its rejection."""
    try:
        value = lookup(data, config.column("id"))
    except LookupError:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        return None
    return str(value).strip()


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    """The record as JSON can store it (bytes, dates and the like become strings)."""
    return json.loads(json.dumps(data, ensure_ascii=False, default=str))


# --- checks shared by every source -----------------------------------------------------------------


def _checked(candidates: Iterable[Candidate], config: SeedsConfig) -> Iterator[Seed | Rejected]:
    """Apply the on_error policy and drop no record silently: duplicates become errors or rejections."""
    first_seen = SeenIds()  # on disk: memory does not grow with the number of seeds
    try:
        for candidate in candidates:
            item = candidate.item
            if isinstance(item, Seed) and config.max_chars is not None and _chars(item) > config.max_chars:
                yield _too_long(candidate, item, config.max_chars)
                continue
            if isinstance(item, Seed):
                earlier = first_seen.first(item.id, candidate.where)
                if earlier is None:
                    yield item
                    continue
                candidate = _duplicate(candidate, item, earlier)
                item = candidate.item
            if config.on_error == "raise":
                raise SeedError(candidate.message or f"{candidate.where.describe()}: bad record")
            yield item
    finally:
        first_seen.close()


def _chars(seed: Seed) -> int:
    return len(seed.instruction) + sum(len(a) for a in seed.answers) + len(seed.context or "")


def _too_long(candidate: Candidate, seed: Seed, limit: int) -> Rejected:
    """Seeds are short pairs (with an optional source passage): a huge record is rejected, never sent."""
    detail = f"{candidate.where}: {_chars(seed)} characters (instruction + answers + context) > seeds.max_chars={limit}"
    raw = _json_safe(candidate.raw) if candidate.raw is not None else to_dict(seed)
    return Rejected(id=seed.id, stage=STAGE, reason="too_long", detail=detail, record=raw)


def _duplicate(candidate: Candidate, seed: Seed, earlier: Location) -> Candidate:
    where = candidate.where
    first = f"{earlier.unit} {earlier.line}" if earlier.path == where.path else earlier.describe()
    raw = _json_safe(candidate.raw) if candidate.raw is not None else to_dict(seed)
    detail = f"{where} field 'id': duplicate id {seed.id!r}, first at {earlier}"
    message = (f"{where.describe()}, field 'id': duplicate id {seed.id!r}, already used at {first}. "
               f"Fix: give each record a unique id, {HINT_REJECT} (the first occurrence is kept).")
    rejected = Rejected(id=seed.id, stage=STAGE, reason="duplicate_id", detail=detail, record=raw)
    return Candidate(rejected, where, raw=raw, message=message)


def _first(items: Iterable[Seed | Rejected], offset: int, limit: int | None) -> Iterator[Seed | Rejected]:
    """Skip `offset` seeds, then stop after `limit` seeds; rejections pass through."""
    n_seen = 0
    if limit == 0:
        return
    for item in items:
        if isinstance(item, Rejected):
            yield item
            continue
        n_seen += 1
        if n_seen <= offset:
            continue
        yield item
        if limit is not None and n_seen - offset >= limit:
            return


def _sampled(items: Iterable[Seed | Rejected], offset: int, limit: int, seed: int) -> Iterator[Seed | Rejected]:
    """A seeded random sample of `limit` seeds after the first `offset`, emitted in input order."""
    everything = list(items)
    positions = [i for i, item in enumerate(everything) if isinstance(item, Seed)][offset:]
    chosen = set(random.Random(seed).sample(positions, min(limit, len(positions))))
    for i, item in enumerate(everything):
        if isinstance(item, Rejected) or i in chosen:
            yield item
