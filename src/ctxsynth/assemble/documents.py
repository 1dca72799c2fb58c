"""Documents tokenized once: counts, boundary windows, and the keys of the leak checks.

Counting a concatenation exactly without re-tokenizing it rests on one observation: tokenizers that
split text with a pre-tokenizer (byte-level BPE of GPT-2/Llama-3/Qwen/SmolLM2, tiktoken) never merge
across a split point, and the point between a letter and " word" is always one. We cut each document
at its first and last such point (checked against the document's own tokenization): the middle then
contributes a fixed token count in any context, and only the short head and tail windows are
re-tokenized together with their neighbours (see budget.py).
"""

from __future__ import annotations

import bisect
import heapq
import re
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from ctxsynth.eval.metrics import normalize_answer
from ctxsynth.tokenize import Tokenizer

_CUT = re.compile(r"(?<=[^\W\d_]) (?=[^\W\d_])")  # letter, space, letter
_SKETCH = 64  # bottom-k sketch size for near-duplicate estimates
_SHINGLE = 5
_BATCH = 256


@dataclass(frozen=True)
class Doc:
    """A candidate document. head + (middle tokens) + tail == text; head == text when it has no cuts."""

    id: str
    task: str
    text: str
    n_tokens: int
    head: str
    middle: int
    tail: str
    norm: str  # " normalised text " for word-boundary answer search
    sketch: tuple[int, ...]
    # where each token ends (pack_ends: 2 bytes a token), kept so trimming needs no second tokenization
    ends: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def has_cuts(self) -> bool:
        return len(self.head) < len(self.text)

    def contains(self, normalized_answer: str) -> bool:
        """Same rule as ctxsynth.eval.metrics.contains_normalized, on the cached normalised text."""
        return bool(normalized_answer) and f" {normalized_answer} " in self.norm


def _sketch(norm: str) -> tuple[int, ...]:
    words = norm.split()
    if len(words) < _SHINGLE:
        grams = {" ".join(words)}
    else:
        grams = {" ".join(words[i : i + _SHINGLE]) for i in range(len(words) - _SHINGLE + 1)}
    return tuple(sorted(heapq.nsmallest(_SKETCH, {zlib.crc32(g.encode()) for g in grams})))


def jaccard(a: Doc, b: Doc) -> float:
    """Bottom-k estimate of the word 5-gram Jaccard similarity (deterministic: crc32 hashes)."""
    if not a.sketch or not b.sketch:
        return 0.0
    union = heapq.nsmallest(_SKETCH, set(a.sketch) | set(b.sketch))
    sa, sb = set(a.sketch), set(b.sketch)
    return sum(1 for h in union if h in sa and h in sb) / len(union)


def _cut_points(text: str, ends: Sequence[int]) -> tuple[int, int] | None:
    """First and last letter-space-letter positions that are token ends in the doc's tokenization."""

    def is_token_end(p: int) -> bool:
        i = bisect.bisect_left(ends, p)
        return i < len(ends) and ends[i] == p

    first = next((m.start() for m in _CUT.finditer(text, 0, min(len(text), 400)) if is_token_end(m.start())), None)
    if first is None:
        first = next((m.start() for m in _CUT.finditer(text) if is_token_end(m.start())), None)
    if first is None:
        return None
    window = max(first + 1, len(text) - 400)
    lasts = [m.start() for m in _CUT.finditer(text, window) if is_token_end(m.start())]
    if not lasts:
        lasts = [m.start() for m in _CUT.finditer(text, first + 1) if is_token_end(m.start())]
    return (first, lasts[-1]) if lasts else None


def pack_ends(ends: Sequence[int]) -> bytes | None:
    """Token end offsets as 16-bit steps; None when they do not fit (unsorted, or a step > 65535)."""
    steps = [b - a for a, b in zip([0, *ends], ends)]
    if any(not 0 <= d <= 0xFFFF for d in steps):
        return None
    return array("H", steps).tobytes()


def token_ends(tokenizer: Tokenizer, doc: Doc) -> list[int]:
    """Where each of the document's tokens ends: from the index when kept there, else tokenized."""
    if doc.ends is not None:
        return list(accumulate(array("H", doc.ends)))
    return [e for _, e in tokenizer.offsets_batch([doc.text])[0]]


def _make(doc_id: str, task: str, text: str, offsets: Sequence[tuple[int, int]]) -> Doc:
    ends = [e for _, e in offsets]
    cuts = _cut_points(text, ends) if ends == sorted(ends) else None
    norm = f" {normalize_answer(text)} "
    packed = pack_ends(ends)
    if cuts is None:
        return Doc(doc_id, task, text, len(offsets), text, 0, "", norm, _sketch(norm), packed)
    p, q = cuts
    middle = bisect.bisect_right(ends, q) - bisect.bisect_right(ends, p)
    return Doc(doc_id, task, text, len(offsets), text[:p], middle, text[q:], norm, _sketch(norm), packed)


def index_documents(tokenizer: Tokenizer, items: Sequence[tuple[str, str, str]]) -> list[Doc]:
    """Tokenize (id, task, text) items once, in batches, into Docs (text is stripped)."""
    docs: list[Doc] = []
    for start in range(0, len(items), _BATCH):
        chunk = items[start : start + _BATCH]
        texts = [text.strip() for _, _, text in chunk]
        for (doc_id, task, _), text, offsets in zip(chunk, texts, tokenizer.offsets_batch(texts)):
            docs.append(_make(doc_id, task, text, offsets))
    return docs


def trim_document(tokenizer: Tokenizer, doc: Doc, max_tokens: int, slack: int = 64) -> Doc | None:
    """A prefix of `doc` of at most `max_tokens` tokens; it ends at a sentence end when that costs at
    most about `slack` tokens, else at a word end."""
    if max_tokens <= 0:
        return None
    ends = token_ends(tokenizer, doc)
    limit = max_tokens
    while limit > 0:
        end = ends[min(limit, len(ends)) - 1]
        text = doc.text[:end]
        sentence = max(text.rfind(". "), text.rfind(".\n"), text.rfind("? "), text.rfind("! "))
        if sentence > 0 and len(text) - sentence <= 3 * slack:
            text = text[: sentence + 1]
        elif " " in text:
            text = text[: text.rfind(" ")]
        text = text.strip()
        if not text:
            return None
        trimmed = index_documents(tokenizer, [(doc.id, doc.task, text)])[0]
        if trimmed.n_tokens <= max_tokens:
            return trimmed
        limit -= max(1, trimmed.n_tokens - max_tokens)
    return None
