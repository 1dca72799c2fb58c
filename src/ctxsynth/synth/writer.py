"""Training data for a context writer: a small model fine-tuned to write the background document
from (question, answer), for users without API access to a large generator.

Each human (question, answer, context) triple becomes one chat row whose prompt is exactly the
context-synthesis prompt (`ContextSynthesis.prompt`, the same prompt file, genre and target-words
wording the synthesize stage sends) and whose reply is `Context: <the human context>`, the form
`ContextSynthesis.parse` reads. The target length asked in each row is the human context's own
length (rounded to 10 words), so the writer learns to follow the length request. A model trained
on these rows (`ctxsynth train`) is then a synthesis LLM like any other: `llm.backend: transformers`
with `llm.model: <its final folder>`.

Triples must come from a split disjoint from the experiment's seeds: `exclude` drops every triple
whose id, question or context equals one of an excluded seed's, and the count is reported.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ctxsynth.records import Seed
from ctxsynth.synth.tasks import ContextSynthesis

log = logging.getLogger(__name__)

REPLY_LABEL = "Context: "


@dataclass
class WriterData:
    rows: list[dict[str, Any]]
    skipped_no_context: int
    skipped_overlap: int


def target_words(context: str) -> int:
    """The human context's length in words, rounded to 10 (at least 10)."""
    return max(10, round(len(context.split()) / 10) * 10)


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def writer_rows(seeds: Iterable[Seed], task: ContextSynthesis, exclude: Iterable[Seed] = ()) -> WriterData:
    """One {"messages": [system?, user, assistant], "meta"} row per usable triple, in input order."""
    banned_ids: set[str] = set()
    banned_text: set[str] = set()
    for seed in exclude:
        banned_ids.add(seed.id)
        banned_text.add(_key(seed.instruction))
        if seed.context:
            banned_text.add(_key(seed.context))
    rows: list[dict[str, Any]] = []
    no_context = overlap = 0
    for seed in seeds:
        context = (seed.context or "").strip()
        if not context:
            no_context += 1
            continue
        if seed.id in banned_ids or _key(seed.instruction) in banned_text or _key(context) in banned_text:
            overlap += 1
            continue
        sized = copy.copy(task)
        sized.target_words = target_words(context)
        messages = [dict(m) for m in sized.prompt(seed)]
        messages.append({"role": "assistant", "content": REPLY_LABEL + context})
        rows.append({"id": seed.id, "messages": messages,
                     "meta": {"seed_id": seed.id, "task": seed.task, "target_words": sized.target_words}})
    log.info("context writer: %d rows, %d seeds without a context, %d overlapping the excluded seeds",
             len(rows), no_context, overlap)
    return WriterData(rows, no_context, overlap)
