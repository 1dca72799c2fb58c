"""Record types, one per stage, as plain JSON-serialisable dataclasses.

Provenance is never dropped: every record carries enough to answer "where did this come from and
where is its evidence" from the file alone.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Seed:
    """A human instruction-answer pair; `answer` may be a list of accepted strings."""

    id: str
    task: str
    instruction: str
    answer: str | list[str]
    context: str | None = None  # the original human context, kept for baselines
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answers(self) -> list[str]:
        return list(self.answer) if isinstance(self.answer, list) else [self.answer]


@dataclass
class Attempt:
    """One generation attempt for a seed, kept whether it passed or failed."""

    attempt: int
    sampling_seed: int
    text: str | None
    finish_reason: str | None
    usage: dict[str, int]
    error: str | None = None
    verdicts: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # first failed check, None when the attempt passed


@dataclass
class Synthesized:
    """A seed plus its synthetic context, the generation provenance and verification verdicts."""

    id: str
    task: str
    seed: Seed
    context: str
    provenance: dict[str, Any]
    verdicts: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    # multi-document synthesis: the generated documents (context = them joined by blank lines);
    # empty for single-document tasks, and left out of their files so old records load unchanged
    documents: list[str] = field(default_factory=list)


@dataclass
class Rejected:
    """A dropped record with its stage and reason; written to <stage>/rejected/."""

    id: str
    stage: str
    reason: str
    detail: str
    record: dict[str, Any]


def to_dict(obj: Any) -> dict[str, Any]:
    """`dataclasses.asdict` without its deep copy of every leaf (records hold only JSON values, which
    are immutable or rebuilt here): the same result, several times faster on the hot path of a run."""
    result = _plain(obj)
    assert isinstance(result, dict)
    return result


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return value
    if kind is list:
        return [_plain(v) for v in value]
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    if kind is tuple:
        return tuple(_plain(v) for v in value)
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    return copy.deepcopy(value)  # anything else (never in a record): a copy, as asdict makes


def seed_from_dict(d: dict[str, Any]) -> Seed:
    return Seed(**d)


def synthesized_from_dict(d: dict[str, Any]) -> Synthesized:
    d = dict(d)
    d["seed"] = Seed(**d["seed"])
    d["attempts"] = [Attempt(**a) for a in d.get("attempts", [])]
    return Synthesized(**d)


@dataclass
class Sample:
    """An assembled long-context training sample: chat messages plus where the evidence landed.

    `gold_char_span` is [start, end) of the gold document inside messages[0]["content"];
    `gold_token_span` is [start, end) in tokens of the fully rendered chat (template applied) with the
    target tokenizer; `gold_depth` = gold_token_span start / total tokens of the prompt part (0..1).
    """

    id: str
    task: str
    seed_id: str
    messages: list[dict[str, str]]  # [user, assistant]; the assistant turn is the human answer
    answer: str | list[str]
    template: str
    gold_index: int  # slot of the gold document among the documents (0-based)
    gold_indices: list[int]  # all gold slots (multi-document synthesis has several)
    gold_depth: float
    gold_char_span: list[int]
    gold_token_span: list[int]
    n_documents: int
    distractor_ids: list[str]
    distractor_strategy: str
    separator: str
    tokens: dict[str, Any]  # total, target, prompt, answer, per_document (list), template_overhead
    tokenizer: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalItem:
    """One evaluation prompt with its references; produced by NIAH and built-in eval-set builders.

    `metric` names a pure function in ctxsynth.eval.metrics: "all_substring" (NIAH: every answer must
    appear), "qa_f1", "rouge_l", "classification", "retrieval", "code_sim".
    """

    id: str
    task: str
    prompt: str  # the user message (chat template applied by the evaluator)
    answers: list[str]
    metric: str
    max_new_tokens: int = 64
    meta: dict[str, Any] = field(default_factory=dict)  # length, depth, variant, dataset, ...
