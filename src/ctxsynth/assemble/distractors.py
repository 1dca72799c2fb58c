"""Distractor strategies: each yields candidate documents for one sample, best first.

Random strategies (same task, any task, external corpus) shuffle with the sample's own generator.
Retrieval strategies (MiniLM embeddings, BM25) rank the pool by closeness to the gold document, so
distractors share its topic; the leak check in the assembler then drops any candidate that contains
the answer, which leaves hard negatives: close in topic, different answer. Indexes are built once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from ctxsynth.assemble.documents import Doc
from ctxsynth.assemble.pool import DocPool, candidates_at
from ctxsynth.errors import ConfigError, MissingDependency

log = logging.getLogger(__name__)

_QUERY_WORDS = 256
_BM25_TOP = 256


# retrieval strategies and the module each imports (both in the `assemble` extra)
_NEEDS = {"bm25": "bm25s", "embedding": "sentence_transformers"}


def missing_dependency(strategy: str) -> str | None:
    """What to install for distractor `strategy` when its retrieval library is absent; None when it can run."""
    import importlib.util

    module = _NEEDS.get(strategy.partition(":")[0])
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return f"assemble.distractors {strategy!r} needs {module}: pip install 'ctxsynth[assemble]'"


def _require(strategy: str) -> None:
    problem = missing_dependency(strategy)
    if problem:
        raise MissingDependency(problem)


class CandidateSource(Protocol):
    def candidates(self, gold: Doc, rng: random.Random) -> Iterator[Doc]: ...


class RandomSource:
    """Uniformly shuffled documents, of the gold's task only (paper) or of any task/corpus.

    `docs` is a list or a DocPool (on disk): a task's documents are its positions, and a candidate
    is read from the pool only when selection looks past its token count."""

    def __init__(self, docs: Sequence[Doc], same_task: bool, draw: str = "shuffle") -> None:
        self.docs = docs
        self.same_task = same_task
        self.draw = draw  # "shuffle" (whole list, O(pool)) or "sample" (lazy distinct draws)
        self.by_task: dict[str, Sequence[int]] = {}

    def task_positions(self, task: str) -> Sequence[int]:
        if task not in self.by_task:
            if isinstance(self.docs, DocPool):
                self.by_task[task] = self.docs.positions(task)
            else:
                self.by_task[task] = [i for i, doc in enumerate(self.docs) if doc.task == task]
        return self.by_task[task]

    def candidates(self, gold: Doc, rng: random.Random) -> Iterator[Doc]:
        positions = self.task_positions(gold.task) if self.same_task else range(len(self.docs))
        if self.draw == "sample":
            # one draw from the sample's generator seeds the walk, however far selection reads it
            walk = distinct_draws(len(positions), random.Random(rng.getrandbits(64)))
            return candidates_at(self.docs, (positions[i] for i in walk), gold.id)
        order = list(range(len(positions)))
        rng.shuffle(order)
        return candidates_at(self.docs, (positions[i] for i in order), gold.id)


def distinct_draws(n: int, rng: random.Random) -> Iterator[int]:
    """0..n-1 in uniformly random order, drawn lazily: the first k cost O(k) (random draws, repeats
    redrawn) while fewer than half are out; the rest are then shuffled at once (O(n), paid only by a
    caller that has already read n/2)."""
    seen: set[int] = set()
    while 2 * len(seen) < n:
        i = rng.randrange(n)
        if i not in seen:
            seen.add(i)
            yield i
    rest = [i for i in range(n) if i not in seen]
    rng.shuffle(rest)
    yield from rest


class EmbeddingSource:
    """Pool documents ranked by cosine similarity of sentence embeddings to the gold document."""

    def __init__(self, docs: Sequence[Doc], model_dir: Path) -> None:
        _require("embedding")
        from sentence_transformers import SentenceTransformer

        self.docs = docs  # a list or a DocPool; the embedding matrix itself is held in memory
        self.model = SentenceTransformer(str(model_dir), device="cpu")
        self.row = _rows(docs)
        self.matrix = self._embed([doc.text for doc in self.docs])
        log.info("embedded %d pool documents with %s", len(self.docs), model_dir)

    def _embed(self, texts: list[str]):  # noqa: ANN202 (numpy array)
        heads = [" ".join(t.split()[:_QUERY_WORDS]) for t in texts]
        return self.model.encode(heads, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)

    def candidates(self, gold: Doc, rng: random.Random) -> Iterator[Doc]:
        import numpy as np

        row = self.row(gold.id)
        vector = self.matrix[row] if row is not None and self.docs[row].text == gold.text else self._embed([gold.text])[0]
        # rounding makes the ranking immune to last-bit BLAS differences between processes
        scores = np.round(self.matrix @ vector, 4)
        order = np.lexsort((np.arange(len(scores)), -scores))
        return candidates_at(self.docs, order.tolist(), gold.id)


class BM25Source:
    """Pool documents ranked by BM25 (bm25s) against the gold document's first words; the rest shuffled."""

    def __init__(self, docs: Sequence[Doc]) -> None:
        _require("bm25")
        import bm25s

        self.docs = docs  # a list or a DocPool; the BM25 index itself is held in memory
        self.bm25s = bm25s
        self.retriever = bm25s.BM25()
        corpus = bm25s.tokenize([d.text for d in self.docs], stopwords="en", show_progress=False)
        self.retriever.index(corpus, show_progress=False)

    def candidates(self, gold: Doc, rng: random.Random) -> Iterator[Doc]:
        query = " ".join(gold.text.split()[:_QUERY_WORDS])
        tokens = self.bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)
        known = [[t for t in tokens[0] if t in self.retriever.vocab_dict]]
        ranked: list[int] = []
        if known[0]:
            k = min(_BM25_TOP, len(self.docs))
            results, scores = self.retriever.retrieve(known, k=k, show_progress=False, n_threads=1)
            ranked = [int(i) for i, s in zip(results[0], scores[0]) if s > 0]
        seen = set(ranked)
        rest = [i for i in range(len(self.docs)) if i not in seen]
        rng.shuffle(rest)
        return candidates_at(self.docs, ranked + rest, gold.id)


def _rows(docs: Sequence[Doc]) -> Callable[[str], int | None]:
    """id -> position of the last document with that id (as a dict over the list keeps)."""
    if isinstance(docs, DocPool):
        return docs.position
    rows = {doc.id: i for i, doc in enumerate(docs)}
    return rows.get


def build_source(strategy: str, pool: Sequence[Doc], corpus: Sequence[Doc], model_dir: Path | None,
                 draw: str = "shuffle") -> CandidateSource:
    """The candidate source of a strategy name (validated by AssembleConfig); `draw`: how random
    strategies order candidates (AssembleConfig.random_draw)."""
    if strategy == "same_task":
        return RandomSource(pool, same_task=True, draw=draw)
    if strategy == "any_task":
        return RandomSource(pool, same_task=False, draw=draw)
    kind, _, corpus_name = strategy.partition(":")
    docs = corpus if corpus_name else pool  # "embedding:wiki" ranks the corpus, "embedding" the pool
    if kind == "corpus":
        return RandomSource(corpus, same_task=False, draw=draw)
    if kind == "embedding":
        from ctxsynth import assets

        return EmbeddingSource(docs, model_dir or assets.minilm_dir())
    if kind == "bm25":
        return BM25Source(docs)
    raise ConfigError(f"unknown distractor strategy {strategy!r}")
