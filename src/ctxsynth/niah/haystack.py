"""Haystack sources tokenized once, cut by token counts, and needle insertion at sentence ends.

A source (Paul Graham essays, Wikipedia lead extracts, or RULER-style repeated noise sentences) is
encoded once per process and tokenizer; a haystack of n tokens is then a slice of that id list,
decoded. This keeps 64k-token samples cheap: no per-sample tokenization of the source text.
Needles go to the sentence end nearest to their requested depth, so the text stays readable.
"""

from __future__ import annotations

import bisect
import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ctxsynth import fillers
from ctxsynth.tokenize import load_tokenizer

log = logging.getLogger(__name__)

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|[A-Z])")
_SNAP_FRACTION = 0.02  # a needle may move at most 2% of the haystack (or 40 chars) to reach a sentence end
_SNAP_MIN_CHARS = 40
_LEAD_TRIM_CHARS = 200  # a haystack starts after the first sentence end within this many chars


@dataclass(frozen=True)
class HaystackSource:
    """A long text and its token ids under one tokenizer."""

    name: str
    text: str
    ids: tuple[int, ...]


def _base_text(composition: str) -> tuple[str, str]:
    """(text, separator used when the text must be repeated) of a composition."""
    if composition == "essay":
        return fillers.essays_text(), "\n\n"
    if composition == "wiki":
        pages = fillers.wiki_pages()
        extracts = [pages[title].get("extract", "").strip() for title in sorted(pages)]
        return "\n\n".join(e for e in extracts if e), "\n\n"
    if composition == "noise":
        return NOISE, " "
    raise ValueError(f"composition {composition!r} has no haystack source")


@functools.lru_cache(maxsize=8)
def _encoded(tokenizer_spec: str, composition: str, repeats: int) -> HaystackSource:
    text, sep = _base_text(composition)
    if repeats > 1:
        text = sep.join([text] * repeats)
    ids = tuple(load_tokenizer(tokenizer_spec).encode(text))
    log.info("haystack source %s: %d chars, %d tokens (%s)", composition, len(text), len(ids), tokenizer_spec)
    return HaystackSource(composition, text, ids)


def load_source(tokenizer_spec: str, composition: str, min_tokens: int) -> HaystackSource:
    """The source text of `composition` with at least `min_tokens` tokens, repeated if it is short.

    Repeats double, so a few encodings serve every length of a process.
    """
    repeats = 1
    source = _encoded(tokenizer_spec, composition, repeats)
    while len(source.ids) < min_tokens:
        per_copy = max(1, len(_encoded(tokenizer_spec, composition, 1).ids))
        while repeats * per_copy < min_tokens + per_copy:
            repeats *= 2
        source = _encoded(tokenizer_spec, composition, repeats)
    return source


def cut(source: HaystackSource, start: int, n_tokens: int, decode: Callable[[Sequence[int]], str]) -> str:
    """Decode n_tokens source tokens from `start`; drop a leading partial sentence (first 200 chars)."""
    text = decode(source.ids[start:start + n_tokens]).strip("\ufffd")
    if start > 0:
        first = _SENTENCE_END.search(text, 0, _LEAD_TRIM_CHARS)
        if first:
            text = text[first.end():]
    return text.lstrip()  # trailing whitespace is kept: stripping it would make budgets jump


def sentence_ends(text: str) -> list[int]:
    """Sorted positions where a sentence ends (insertion points), including 0 and len(text)."""
    return sorted({0, len(text), *(m.end() for m in _SENTENCE_END.finditer(text))})


def snap(text: str, ends: Sequence[int], depth: float) -> int:
    """Insertion point for a needle at `depth`: the nearest sentence end, else the nearest space."""
    goal = round(depth * len(text))
    i = bisect.bisect_left(ends, goal)
    nearest = min(ends[max(0, i - 1):i + 1], key=lambda p: abs(p - goal))
    if abs(nearest - goal) <= max(_SNAP_MIN_CHARS, _SNAP_FRACTION * len(text)):
        return nearest
    left, right = text.rfind(" ", 0, goal), text.find(" ", goal)
    spaces = [p for p in (left, right) if p >= 0]
    return min(spaces, key=lambda p: abs(p - goal)) if spaces else goal


def insert(text: str, needles: Sequence[str], depths: Sequence[float]) -> tuple[str, list[list[int]], list[int]]:
    """Insert each needle sentence at its depth.

    Returns the new text, each needle's [start, end) char span in it (input order) and its
    insertion point in the original `text`.
    """
    ends = sentence_ends(text)
    points = [snap(text, ends, d) for d in depths]
    order = sorted(range(len(needles)), key=lambda i: (points[i], i))
    pieces: list[str] = []
    spans: list[list[int]] = [[0, 0] for _ in needles]
    offset, last, tail = 0, 0, ""
    for i in order:
        p = points[i]
        chunk = text[last:p]
        pieces.append(chunk)
        offset += len(chunk)
        tail = chunk[-1:] or tail
        before = "" if offset == 0 or tail.isspace() else " "
        after = "" if p == len(text) or text[p].isspace() else " "
        pieces.append(before + needles[i] + after)
        spans[i] = [offset + len(before), offset + len(before) + len(needles[i])]
        offset += len(before) + len(needles[i]) + len(after)
        tail = after or needles[i][-1:]
        last = p
    pieces.append(text[last:])
    return "".join(pieces), spans, points
