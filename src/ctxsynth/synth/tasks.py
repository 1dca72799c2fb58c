"""Synthesis tasks: prompt(seed) -> messages, parse(text) -> fields, verify -> named reason, build.

The stage (stage.py) owns the loop and the checks every task shares (request failed, truncated,
parse failure); a task owns the rest: what to ask, how to read the reply, which content checks
apply (each failure a named reason) and how the kept fields become a `Synthesized` record. Tasks:
"context" (the paper's, here), "instruction" (the instruction-synthesis baseline, instruction.py),
"multidoc" (evidence split over several documents, multidoc.py) and "human" (the seed's own human
context, no model call: the human-context arm, human.py).

A prompt file has a `[system]` and a `[user]` section with str.format placeholders; '#' lines are
comments. The prompt file's hash is recorded as provenance, and since the rendered messages are
part of the request-cache key, editing a prompt file invalidates exactly the affected requests.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import yaml

from ctxsynth.errors import ConfigError, InputError
from ctxsynth.llm.base import Message
from ctxsynth.records import Attempt, Seed, Synthesized
from ctxsynth.registry import Registry
from ctxsynth.synth.config import SynthConfig
from ctxsynth.verify.checks import REASONS, VerifyConfig, verify_context

PROMPT_DIR = Path(__file__).parent / "prompts"
_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.MULTILINE)
_CONTEXT_LABEL = re.compile(r"\**\s*context\s*\**\s*:\s*\**", re.IGNORECASE)


class ParseError(ValueError):
    pass


@dataclass(frozen=True)
class PromptTemplate:
    system: str
    user: str
    sha256: str

    @classmethod
    def from_file(cls, path: Path) -> PromptTemplate:
        raw = Path(path).read_text(encoding="utf-8")
        text = "\n".join(line for line in raw.splitlines() if not line.startswith("#"))
        parts = _SECTION.split(text)
        sections = dict(zip(parts[1::2], (p.strip() for p in parts[2::2]), strict=False))
        if "user" not in sections:
            raise InputError(f"prompt file {path} needs a [user] section (and optionally [system])")
        return cls(sections.get("system", ""), sections["user"], hashlib.sha256(raw.encode()).hexdigest()[:16])

    def render(self, **values: Any) -> list[Message]:
        messages = [{"role": "system", "content": _fill(self.system, values)}] if self.system else []
        messages.append({"role": "user", "content": _fill(self.user, values)})
        return messages


def _fill(template: str, values: dict[str, Any]) -> str:
    # unwrap hard line breaks inside paragraphs so the model sees natural prose
    paragraphs = [" ".join(p.split()) for p in template.split("\n\n")]
    return "\n\n".join(p.format(**values) for p in paragraphs)


@lru_cache(maxsize=4)
def load_genres(path: str | None = None) -> dict[str, Any]:
    return yaml.safe_load(Path(path or PROMPT_DIR / "genres.yaml").read_text(encoding="utf-8"))


def genre_for(task: str, override: str = "auto") -> dict[str, str]:
    table = load_genres()
    name = table["tasks"].get(task) if override == "auto" else override
    if override != "auto" and override not in table["genres"]:
        known = ", ".join(sorted(table["genres"]))
        raise ConfigError(f"unknown genre {override!r}; known: {known} (or 'auto')")
    return table["genres"].get(name, table["default"]) if name else table["default"]


class SynthesisTask(Protocol):
    """What the synthesize stage needs from a task.

    `unusable` answers before any request (a reason, or None); `verify` runs after a successful
    parse and returns (first failed reason or None, verdicts); `reasons` lists every reason the
    task can give, in check order, for documentation and reports.
    """

    name: str
    template: PromptTemplate
    reasons: tuple[str, ...]

    def unusable(self, seed: Seed) -> str | None: ...

    def prompt(self, seed: Seed) -> list[Message]: ...

    def parse(self, text: str) -> Any: ...

    def verify(self, seed: Seed, fields: Any, finish_reason: str | None,
               config: VerifyConfig) -> tuple[str | None, dict[str, Any]]: ...

    def build(self, seed: Seed, fields: Any, provenance: dict[str, Any], verdicts: dict[str, Any],
              attempts: list[Attempt]) -> Synthesized: ...


def needs_llm(task: object) -> bool:
    """Whether the task asks a model for each seed; a task says no with `needs_llm = False` (`human`)."""
    return bool(getattr(task, "needs_llm", True))


def prompt_path(prompt_file: str | None, default: str) -> Path:
    return Path(prompt_file) if prompt_file else PROMPT_DIR / default


class ContextSynthesis:
    """The paper's task: write the missing background document for an instruction-answer pair."""

    name = "context"
    reasons = REASONS

    PREFILL = "Context:"  # the reply's start with `prefill`: the label the parser looks for

    @classmethod
    def from_config(cls, config: SynthConfig, run_seed: int = 0) -> ContextSynthesis:
        return cls(target_words=config.target_words, genre=config.genre, prompt_file=config.prompt_file,
                   prefill=config.prefill)

    def __init__(self, target_words: int = 2000, genre: str = "auto", prompt_file: str | None = None,
                 prefill: bool = False) -> None:
        self.target_words = target_words
        self.genre = genre
        self.prefill = self.PREFILL if prefill else ""
        self.template = PromptTemplate.from_file(prompt_path(prompt_file, "context_synthesis.txt"))
        genre_for("", genre)  # validate the override early

    def unusable(self, seed: Seed) -> str | None:
        return None

    def prompt(self, seed: Seed) -> list[Message]:
        g = genre_for(seed.task, self.genre)
        messages = self.template.render(
            genre=g["genre"], genre_detail=g["detail"], instruction=seed.instruction.strip(),
            answer=seed.answers[0].strip(), target_words=self.target_words,
        )
        if self.prefill:  # the model continues an assistant turn that already holds the label
            messages.append({"role": "assistant", "content": self.prefill})
        return messages

    def parse(self, text: str) -> str:
        """The text after the first "Context:" label; ParseError when there is no label or no text.
        With `prefill`, the reply is the continuation of the label, read as label + reply (a label
        the model repeats right after it is dropped too)."""
        if self.prefill:
            reply = text.lstrip()
            repeated = _CONTEXT_LABEL.match(reply)
            text = self.prefill + " " + (reply[repeated.end():] if repeated else reply)
        match = _CONTEXT_LABEL.search(text)
        if match is None:
            raise ParseError('no "Context:" label in the reply')
        body = text[match.end():].strip()
        if not body:
            raise ParseError('nothing after the "Context:" label')
        if body.startswith("[MISSING]"):  # the model echoed the prompt's placeholder instead of writing
            raise ParseError('the reply echoes the prompt ("Context: [MISSING]")')
        return body

    def verify(self, seed: Seed, fields: str, finish_reason: str | None,
               config: VerifyConfig) -> tuple[str | None, dict[str, Any]]:
        return verify_context(fields, finish_reason, seed.answers, self.target_words, config)

    def build(self, seed: Seed, fields: str, provenance: dict[str, Any], verdicts: dict[str, Any],
              attempts: list[Attempt]) -> Synthesized:
        return Synthesized(seed.id, seed.task, seed, fields, provenance, verdicts, attempts)


SYNTHESIS_TASKS = Registry("synthesis task")
SYNTHESIS_TASKS.register("context", ContextSynthesis)
SYNTHESIS_TASKS.register("instruction", "ctxsynth.synth.instruction:InstructionSynthesis")
SYNTHESIS_TASKS.register("multidoc", "ctxsynth.synth.multidoc:MultiDocSynthesis")
SYNTHESIS_TASKS.register("human", "ctxsynth.synth.human:HumanContexts")


def build_task(config: SynthConfig, run_seed: int = 0) -> SynthesisTask:
    """The configured task, built from the whole synth config (each task reads its own options)."""
    return SYNTHESIS_TASKS.get(config.task).from_config(config, run_seed)
