"""The compact form of each stage's record that the page shows (one function per stage).

Texts are kept whole (the page is for reading them); what the page never shows (sketches, the
seed's provenance plumbing, a second copy of a context) is dropped, so a chunk stays close to the
size of the data it shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ctxsynth.view.segments import document_segments, support_span

SEED_CONTEXT_CHARS = 4000  # the seed's own (human) context is shown up to this many characters


def _answers(record: dict[str, Any]) -> list[str]:
    answer = record.get("answer")
    return [str(a) for a in answer] if isinstance(answer, list) else ([] if answer is None else [str(answer)])


def seed_view(seed: dict[str, Any], rejected: dict[str, Any] | None = None) -> dict[str, Any]:
    context = seed.get("context") or ""
    out = {"instruction": seed.get("instruction", ""), "answers": _answers(seed), "task": seed.get("task"),
           "context": context[:SEED_CONTEXT_CHARS], "context_chars": len(context),
           "origin": (seed.get("meta") or {}).get("origin"), "title": (seed.get("meta") or {}).get("title")}
    if rejected is not None:
        out.update(reason=rejected.get("reason"), detail=rejected.get("detail"))
    return out


def filter_view(record: dict[str, Any], rejected: dict[str, Any] | None = None) -> dict[str, Any]:
    """The filters' scores of one seed (reliance, closed-book, judge, ...) and the verdict."""
    out: dict[str, Any] = {"scores": (record.get("meta") or {}).get("filters") or {}}
    if rejected is not None:
        out.update(reason=rejected.get("reason"), detail=rejected.get("detail"))
    return out


def synth_view(record: dict[str, Any], rejected: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every attempt's text with its verdicts and reason; the kept context once."""
    attempts = [{"attempt": a.get("attempt"), "reason": a.get("reason"), "error": a.get("error"),
                 "finish_reason": a.get("finish_reason"), "text": a.get("text"), "verdicts": a.get("verdicts"),
                 "usage": a.get("usage")} for a in record.get("attempts") or []]
    provenance = record.get("provenance") or {}
    out: dict[str, Any] = {
        "context": record.get("context"), "documents": record.get("documents"), "attempts": attempts,
        "verdicts": record.get("verdicts"), "task": provenance.get("task"),
        "model": provenance.get("model"), "backend": provenance.get("backend"),
        "target_words": provenance.get("target_words"), "sampling": provenance.get("sampling"),
    }
    if rejected is not None:
        out.update(reason=rejected.get("reason"), detail=rejected.get("detail"))
    return out


def sample_view(sample: dict[str, Any], head: str | None, tail: str | None) -> dict[str, Any]:
    """The assembled sample: its user message cut into labelled segments, the answer's support span."""
    user = sample["messages"][0]["content"]
    segments = document_segments(sample, head, tail)
    support = None
    for start, end, kind, _ in segments:
        if kind == "gold" and support is None:
            support = support_span(user, start, end, _answers(sample))
    return {"user": user, "completion": [m.get("content") for m in sample["messages"][1:]],
            "segments": segments, "support": support, "tokens": sample.get("tokens"),
            "gold_depth": sample.get("gold_depth"), "gold_indices": sample.get("gold_indices"),
            "n_documents": sample.get("n_documents"), "distractor_strategy": sample.get("distractor_strategy"),
            "template": sample.get("template"), "tokenizer": sample.get("tokenizer"),
            "answers": _answers(sample), "meta": {k: v for k, v in (sample.get("meta") or {}).items()
                                                  if k not in ("instruction", "gold_char_spans")}}


def assemble_rejected_view(rejected: dict[str, Any]) -> dict[str, Any]:
    return {"reason": rejected.get("reason"), "detail": rejected.get("detail")}


def export_view(row: dict[str, Any], fmt: str, is_user: Callable[[Any], bool]) -> dict[str, Any]:
    """The row as the trainer reads it, split into the masked part (no loss) and the trained part.
    A text equal to the sample's user message (`is_user`) is stored as a reference, not a second copy."""
    if "prompt" in row and "completion" in row and isinstance(row["prompt"], list):
        masked, trained = row["prompt"], row["completion"]
    elif isinstance(row.get("messages"), list):
        messages = row["messages"]
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
        masked, trained = messages[:last], messages[last:]
    else:  # a flat row (longalign, llamafactory, parquet): shown as its fields
        return {"format": fmt, "fields": {k: ("(the assembled user message)" if is_user(v) else v)
                                          for k, v in row.items() if k != "id"}}

    def part(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"role": m.get("role"), "same_as_user": True} if is_user(m.get("content"))
                else {"role": m.get("role"), "text": m.get("content")} for m in messages]

    return {"format": fmt, "masked": part(masked), "trained": part(trained)}
