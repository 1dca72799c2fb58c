"""Prompt templates and document separators for assembled samples.

A template is text with `{context}` exactly once and `{input}` at most once (LongBench's placeholders,
so a user can load LongBench's own dataset2prompt.json). We substitute by plain replacement, not
str.format, so braces elsewhere in a template are left alone. Templates without `{input}` (the
summarisation families) drop the instruction, as LongBench does.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ctxsynth.errors import ConfigError, InputError

log = logging.getLogger(__name__)

BUILTIN_FILE = Path(__file__).with_name("templates") / "builtin.yaml"
_JOINERS = {"none": "\n", "blank_line": "\n\n", "numbered": "\n\n"}


@dataclass(frozen=True)
class PromptTemplate:
    """One task's template; `name` is recorded in every Sample."""

    name: str
    text: str

    def __post_init__(self) -> None:
        if self.text.count("{context}") != 1:
            raise ConfigError(f"template {self.name!r} must contain {{context}} exactly once")
        if self.text.count("{input}") > 1:
            raise ConfigError(f"template {self.name!r} contains {{input}} more than once")

    def split(self, instruction: str) -> tuple[str, str]:
        """The text before and after the documents, with the instruction filled in."""
        head, tail = self.text.split("{context}")
        return head.replace("{input}", instruction), tail.replace("{input}", instruction)


def _read_mapping(path: Path) -> dict[str, str]:
    raw = path.read_text(encoding="utf-8")
    data = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: a template file must map task names to templates")
    out: dict[str, str] = {}
    for task, entry in data.items():
        text = entry.get("template") if isinstance(entry, Mapping) else entry
        if not isinstance(text, str):
            raise InputError(f"{path}: entry {task!r} has no template text")
        out[str(task)] = text
    return out


@functools.lru_cache(maxsize=16)
def _file_templates(path: str) -> dict[str, str]:
    return _read_mapping(Path(path))


def builtin_names() -> list[str]:
    return sorted(_file_templates(str(BUILTIN_FILE)))


class TemplateSet:
    """Resolves the template of each task once: built-in by task, a named built-in, or a user file."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._builtin = _file_templates(str(BUILTIN_FILE))
        self._user: dict[str, str] | None = None
        self._single: PromptTemplate | None = None
        self._cache: dict[str, PromptTemplate] = {}
        if spec == "auto":
            return
        if spec in self._builtin:
            self._single = PromptTemplate(spec, self._builtin[spec])
            return
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(
                f"template {spec!r} is neither a built-in ({', '.join(builtin_names())}) nor a file"
            )
        if path.suffix in (".yaml", ".yml", ".json"):
            self._user = _file_templates(str(path.resolve()))
        else:
            self._single = PromptTemplate(path.name, path.read_text(encoding="utf-8"))

    def for_task(self, task: str) -> PromptTemplate:
        if self._single is not None:
            return self._single
        if task not in self._cache:
            self._cache[task] = self._resolve(task)
        return self._cache[task]

    def _resolve(self, task: str) -> PromptTemplate:
        if self._user is not None:
            if task in self._user:
                return PromptTemplate(f"{Path(self.spec).name}:{task}", self._user[task])
            log.warning("template file %s has no entry for task %r; using the built-in", self.spec, task)
        if task in self._builtin:
            return PromptTemplate(task, self._builtin[task])
        return PromptTemplate("plain", self._builtin["plain"])


def document_prefix(separator: str, slot: int) -> str:
    """Text placed right before the document in `slot` (0-based)."""
    return f"Document {slot + 1}:\n" if separator == "numbered" else ""


def joiner(separator: str) -> str:
    """Text placed between two consecutive documents (before the next one's prefix)."""
    return _JOINERS[separator]
