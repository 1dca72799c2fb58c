"""Turn one parsed input record into a `Seed` through the configured field mapping.

Every check names the field and what is wrong with it (`BadRecord`), so the caller can either stop
with file, line and field or write a Rejected with the reason. Rules:
- instruction: a non-empty string. answer: a non-empty string, or a list of strings (whitespace
  stripped, empty and repeated alternatives dropped; the list must keep at least one).
- id: a string or integer. Without an id column it is derived: the first 16 hex digits of the
  SHA-1 of the JSON array [instruction, answers], so identical pairs get identical ids (and are
  then caught as duplicates).
- context: optional string (null means none). task: optional string, else the configured default.
- meta: optional JSON object; its "origin" key is set to the provenance {source, file, line}.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

from ctxsynth.records import Seed
from ctxsynth.seeds.config import SeedsConfig
from ctxsynth.seeds.sources import Location

DEFAULT_FILE_TASK = "qa"


class BadRecord(Exception):
    """A record that cannot become a Seed: reason code, field, the problem and how to fix it."""

    def __init__(self, reason: str, field: str, problem: str, fix: str) -> None:
        super().__init__(f"field {field!r}: {problem}")
        self.reason, self.field, self.problem, self.fix = reason, field, problem, fix


class _Missing(LookupError):
    pass


def lookup(record: Any, path: str) -> Any:
    """Value at a dotted path; a list of dicts maps the rest of the path over its items.

    An exact top-level key wins over a dotted reading, so a column literally named "a.b" works.
    Raises _Missing when any step is absent.
    """
    if isinstance(record, dict) and path in record:
        return record[path]
    value = record
    for part in path.split("."):
        value = _step(value, part)
    return value


def _step(value: Any, part: str) -> Any:
    if isinstance(value, dict):
        if part not in value:
            raise _Missing(part)
        return value[part]
    if isinstance(value, list):
        if part.lstrip("-").isdigit():
            index = int(part)
            if not -len(value) <= index < len(value):
                raise _Missing(part)
            return value[index]
        return [_step(item, part) for item in value]
    raise _Missing(part)


def derived_id(instruction: str, answers: list[str]) -> str:
    payload = json.dumps([instruction, answers], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]


def record_to_seed(record: dict[str, Any], config: SeedsConfig, where: Location) -> Seed:
    """Map one record to a Seed, raising BadRecord for the first problem found."""
    instruction = cast(str, _text(record, config, "instruction"))  # required: never None
    answer = _answer(record, config)
    answers = answer if isinstance(answer, list) else [answer]
    raw_id = _get(record, config, "id")
    seed_id = derived_id(instruction, answers) if raw_id is _ABSENT else _id(raw_id, config)
    context = _text(record, config, "context", optional=True)
    task = _text(record, config, "task", optional=True) or config.task or DEFAULT_FILE_TASK
    meta = _meta(record, config)
    meta["origin"] = {"source": config.source, "file": config.path, "line": where.line}
    return Seed(id=seed_id, task=task, instruction=instruction, answer=answer, context=context, meta=meta)


_ABSENT = object()


def _get(record: dict[str, Any], config: SeedsConfig, name: str) -> Any:
    column = config.column(name)
    try:
        return lookup(record, column)
    except _Missing:
        if not config.is_required(name):
            return _ABSENT
        found = ", ".join(sorted(record)) or "none"
        raise BadRecord("missing_field", column, "missing",
                        f"add it to every record, or map another column with seeds.fields.{name}=<column> "
                        f"(columns found: {found})") from None


def _text(record: dict[str, Any], config: SeedsConfig, name: str, optional: bool = False) -> str | None:
    value = _get(record, config, name)
    column = config.column(name)
    if value is _ABSENT or (optional and value is None):
        return None
    if value is None:
        raise BadRecord("empty_field", column, "null", "give it a non-empty string")
    if not isinstance(value, str):
        raise BadRecord("bad_type", column, f"expected a string, got {_kind(value)}",
                        f"give it a string, or map another column with seeds.fields.{name}=<column>")
    if not value.strip():
        raise BadRecord("empty_field", column, "empty string", "give it a non-empty string")
    return value.strip()


def _answer(record: dict[str, Any], config: SeedsConfig) -> str | list[str]:
    value = _get(record, config, "answer")
    column = config.column("answer")
    if isinstance(value, list):
        bad = [v for v in value if not isinstance(v, str)]
        if bad:
            raise BadRecord("bad_type", column, f"list holds {_kind(bad[0])}, expected strings only",
                            "give a string or a list of strings")
        kept = list(dict.fromkeys(v.strip() for v in value if v.strip()))
        if not kept:
            raise BadRecord("empty_field", column, "no non-empty answer in the list",
                            "give at least one non-empty answer string")
        return kept
    if value is None:
        raise BadRecord("empty_field", column, "null", "give a non-empty string or a list of strings")
    if not isinstance(value, str):
        raise BadRecord("bad_type", column, f"expected a string or a list of strings, got {_kind(value)}",
                        "give a string or a list of strings")
    if not value.strip():
        raise BadRecord("empty_field", column, "empty string", "give a non-empty answer")
    return value.strip()


def _id(value: Any, config: SeedsConfig) -> str:
    column = config.column("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRecord("bad_type", column, f"expected a string or integer id, got {_kind(value)}",
                        "give each record a unique string id, or drop the id column to derive ids")
    text = str(value).strip()
    if not text:
        raise BadRecord("empty_field", column, "empty id", "give each record a unique non-empty id")
    return text


def _meta(record: dict[str, Any], config: SeedsConfig) -> dict[str, Any]:
    value = _get(record, config, "meta")
    if value is _ABSENT or value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRecord("bad_type", config.column("meta"), f"expected an object, got {_kind(value)}",
                        "give meta as a JSON object, or map another column with seeds.fields.meta=<column>")
    return dict(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", bool: "a boolean", str: "a string"}.get(type(value),
                                                                                      type(value).__name__)
