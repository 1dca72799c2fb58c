"""Where the instruction-synthesis baseline reads: one contiguous chunk of a long document per seed.

The document is the seed's own human context (the paper: "the same 1,600 human documents") or a
document of a corpus ("essays", "wiki", a .txt/.md/.jsonl file or folder, cut by
ctxsynth.assemble.corpus into pieces of about the chunk size). Longer documents are cut to a
contiguous run of whole sentences of about `words` words whose start is drawn from the seed's own
generator, so shard layout and reruns cannot change which chunk a seed gets. The original text is
sliced, never re-spaced, so paragraph breaks survive.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import Any

from ctxsynth.errors import InputError
from ctxsynth.records import Seed
from ctxsynth.rng import rng_for

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Chunk:
    text: str
    source: str  # "seed_context" or "corpus:<spec>"
    document_id: str
    start_char: int
    end_char: int
    words: int
    document_words: int

    def provenance(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "text"}


def sentence_window(text: str, words: int, rng: random.Random) -> tuple[int, int]:
    """[start, end) chars of a run of whole sentences of at least `words` words (the whole text
    when it is not longer), starting at a random sentence that leaves enough words after it."""
    bounds = [0] + [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    counts = [len(text[a:b].split()) for a, b in zip(bounds, bounds[1:], strict=False)]
    total = sum(counts)
    if total <= words:
        return 0, len(text)
    starts, before = [], 0
    for i, n in enumerate(counts):
        if total - before >= words:
            starts.append(i)
        before += n
    first = rng.choice(starts)
    last, taken = first, 0
    while last < len(counts) and taken < words:
        taken += counts[last]
        last += 1
    return bounds[first], bounds[last]


class ChunkSource:
    """Picks the chunk of each seed: from its own context, or from a corpus when one is named."""

    def __init__(self, words: int, corpus: str | None, run_seed: int) -> None:
        self.words = words
        self.corpus = corpus
        self.run_seed = run_seed
        self._docs: tuple[tuple[str, str], ...] | None = None
        self._cache: dict[str, Chunk | None] = {}

    def documents(self) -> tuple[tuple[str, str], ...]:
        if self._docs is None:
            from ctxsynth.assemble.corpus import load_corpus

            self._docs = load_corpus(str(self.corpus), self.words)
            if not self._docs:
                raise InputError(f"corpus {self.corpus!r} holds no documents")
        return self._docs

    def chunk(self, seed: Seed) -> Chunk | None:
        """The seed's chunk (cached), or None when the seed has no document and no corpus is set."""
        if seed.id not in self._cache:
            self._cache[seed.id] = self._make(seed)
        return self._cache[seed.id]

    def _make(self, seed: Seed) -> Chunk | None:
        rng = rng_for(self.run_seed, "instruction-chunk", seed.id)
        if self.corpus is None:
            if not (seed.context or "").strip():
                return None
            doc_id, text, source = seed.id, (seed.context or "").strip(), "seed_context"
        else:
            docs = self.documents()
            doc_id, text = docs[rng.randrange(len(docs))]
            source = f"corpus:{self.corpus}"
        start, end = sentence_window(text, self.words, rng)
        piece = text[start:end].strip()
        return Chunk(piece, source, doc_id, start, start + len(piece), len(piece.split()), len(text.split()))
