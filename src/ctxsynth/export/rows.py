"""The one row type every export format is written from, and its conversions.

An `ExportRow` is either an assembled long-context `Sample` or a record of a general SFT file
mixed in beside them; formats see only rows, so mixing applies to every format identically and
row i of each format folder is the same record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ctxsynth.errors import InputError
from ctxsynth.records import Sample

Message = dict[str, str]

ROLES = ("system", "user", "assistant")
SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}


@dataclass(frozen=True)
class ExportRow:
    """A conversation to export; `sample` is None for rows from the general SFT file."""

    id: str
    messages: tuple[Message, ...]
    source: str  # "long" (an assembled Sample) or "general" (mixed in)
    sample: Sample | None = None


def row_from_sample(sample: Sample) -> ExportRow:
    return ExportRow(id=sample.id, messages=tuple(check_messages(sample.messages, sample.id)),
                     source="long", sample=sample)


def check_messages(messages: Sequence[Message], where: str) -> list[Message]:
    """Plain {role, content} copies; a conversation must end with a non-empty assistant turn."""
    out: list[Message] = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise InputError(f"{where}: message {m!r} needs a role in {ROLES} and string content")
        out.append({"role": role, "content": content})
    if len(out) < 2 or out[-1]["role"] != "assistant" or not out[-1]["content"]:
        raise InputError(f"{where}: a conversation needs a prompt and must end with an assistant answer")
    return out


def prompt_completion(row: ExportRow) -> dict[str, object]:
    """TRL conversational prompt-completion: every turn before the last answer is the prompt."""
    msgs = list(row.messages)
    return {"id": row.id, "prompt": msgs[:-1], "completion": msgs[-1:]}


def context_free(row: ExportRow) -> ExportRow:
    """The coherence-diagnostic twin: the bare instruction alone, the same answer.

    General rows carry no context and pass through unchanged, so the twin keeps the same mix.
    """
    if row.sample is None:
        return row
    instruction = row.sample.meta.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise InputError(
            f"sample {row.id!r} has no meta['instruction']: the context-free twin needs the bare "
            "instruction, which the assembly stage stores there; re-run assembly with a version that "
            "records it, or leave 'context_free' out of the export formats"
        )
    answer = row.messages[-1]
    return ExportRow(id=row.id, messages=({"role": "user", "content": instruction}, dict(answer)),
                     source=row.source, sample=row.sample)


def sharegpt(row: ExportRow) -> dict[str, object]:
    """LLaMA-Factory sharegpt: system prompt in its own column, turns as {from, value}."""
    msgs = list(row.messages)
    record: dict[str, object] = {"id": row.id}
    if msgs[0]["role"] == "system":
        record["system"] = msgs.pop(0)["content"]
    record["conversations"] = [{"from": SHAREGPT_FROM[m["role"]], "value": m["content"]} for m in msgs]
    return record
