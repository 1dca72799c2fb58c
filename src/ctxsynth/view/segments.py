"""Where each document lies in an assembled sample's user message, and what kind it is.

A sample records its gold documents' character spans, its slot order and its distractor ids, but not
the distractors' own spans. They are recovered here from the template's head and tail (the text
before and after the documents) and the separator the documents were joined with. When a gap
between two known spans cannot be split into exactly the recorded number of distractors (a
distractor with a blank line of its own), the gap is shown as one labelled block instead of guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ctxsynth.assemble.templates import document_prefix, joiner

# kinds a segment can have; the page colours them
HEAD, TAIL, GOLD, DISTRACTOR, DISTRACTORS, SEPARATOR = "head", "tail", "gold", "distractor", "distractors", "sep"


def distractor_label(strategy: str | None, doc_id: str) -> str:
    """A person's name for where a distractor came from: same-task pool, corpus, or hard negative."""
    strategy = strategy or ""
    corpus = doc_id.split(":")[1] if doc_id.startswith("corpus:") and doc_id.count(":") >= 2 else None
    if strategy.startswith(("embedding:", "bm25:")):
        method, source = strategy.split(":", 1)
        return f"hard negative ({method}) from corpus {corpus or source}"
    if strategy in ("embedding", "bm25"):
        return f"hard negative ({strategy}) from the run's contexts"
    if corpus is not None or strategy.startswith("corpus:"):
        return f"corpus {corpus or strategy.split(':', 1)[1]}"
    if strategy == "any_task":
        return "another context (any task)"
    return "another context (same task)"


def _gold_spans(sample: dict[str, Any]) -> list[tuple[int, int, int]]:
    """(slot, start, end) of every gold document, in slot order."""
    slots = list(sample.get("gold_indices") or [sample.get("gold_index", 0)])
    spans = sample.get("meta", {}).get("gold_char_spans") or [sample["gold_char_span"]]
    return sorted((int(slot), int(s), int(e)) for slot, (s, e) in zip(slots, spans))


def _split_gap(text: str, start: int, count: int, sep: str, separator: str) -> list[tuple[int, int]] | None:
    """Spans of `count` documents making up text (joined by `sep`, each after its prefix), or None
    if the text does not split into exactly that many."""
    if count == 0:
        return [] if not text else None
    if separator == "numbered":
        marks = list(re.finditer(r"(?:^|\n\n)Document \d+:\n", text))
        if len(marks) != count or marks[0].start() != 0:
            return None
        ends = [m.start() for m in marks[1:]] + [len(text)]
        return [(start + m.end(), start + end) for m, end in zip(marks, ends)]
    pieces = text.split(sep)
    if len(pieces) != count:
        return None
    spans, pos = [], start
    for piece in pieces:
        spans.append((pos, pos + len(piece)))
        pos += len(piece) + len(sep)
    return spans


def document_segments(sample: dict[str, Any], head: str | None, tail: str | None) -> list[list[Any]]:
    """[start, end, kind, label] over the user message, in order, covering it without overlap.

    `head`/`tail` are the template's text around the documents (None when unknown: the text before
    the first and after the last gold document then counts as distractors, or one block of them)."""
    user = sample["messages"][0]["content"]
    separator = sample.get("separator", "blank_line")
    sep = joiner(separator)
    golds = _gold_spans(sample)
    n_docs = int(sample.get("n_documents", len(golds)))
    ids: Sequence[str] = sample.get("distractor_ids") or []
    strategy = sample.get("distractor_strategy")
    region_start = len(head) if head is not None and user.startswith(head) else 0
    region_end = len(user) - len(tail) if tail and user.endswith(tail) else len(user)
    out: list[list[Any]] = [[0, region_start, HEAD, "prompt template"]]
    cursor, slot, used = region_start, 0, 0
    for k, (gold_slot, g_start, g_end) in enumerate([*golds, (n_docs, region_end, region_end)]):
        last = k == len(golds)
        count = gold_slot - slot
        stop = region_end if last else g_start - len(document_prefix(separator, gold_slot))
        lead = len(sep) if k > 0 and count else 0
        trail = len(sep) if not last and count else 0
        gap = user[cursor + lead:max(stop - trail, cursor + lead)]
        spans = _split_gap(gap, cursor + lead, count, sep, separator) if stop - trail >= cursor + lead else None
        labels = [ids[used + i] if used + i < len(ids) else "?" for i in range(count)]
        end = region_end if last else g_start
        if spans is None:
            names = ", ".join(f"{i} ({distractor_label(strategy, i)})" for i in labels)
            out.append([cursor, end, DISTRACTORS, f"{count} distractors, boundaries not recorded: {names}"])
        else:
            pos = cursor
            for (s, e), doc_id in zip(spans, labels):
                out.append([pos, s, SEPARATOR, ""])
                out.append([s, e, DISTRACTOR, f"{doc_id} · {distractor_label(strategy, doc_id)}"])
                pos = e
            out.append([pos, end, SEPARATOR, ""])
        used += count
        if not last:
            out.append([g_start, g_end, GOLD, f"gold document (slot {gold_slot + 1} of {n_docs})"])
            cursor, slot = g_end, gold_slot + 1
    out.append([region_end, len(user), TAIL, "prompt template"])
    return [s for s in out if s[1] > s[0]]


def support_span(text: str, start: int, end: int, answers: Sequence[str]) -> list[int] | None:
    """The first place in text[start:end] (a gold document) where a reference answer occurs, any case."""
    gold = text[start:end].casefold()
    best: list[int] | None = None
    for answer in answers:
        needle = str(answer).strip().casefold()
        at = gold.find(needle) if needle else -1
        if at >= 0 and (best is None or at + start < best[0]):
            best = [start + at, start + at + len(needle)]
    return best
