"""Small real pools for the assembly tests: Paul Graham essay chunks turned into synthetic records."""

from __future__ import annotations

import functools

import pytest

from ctxsynth.assemble import AssembleConfig, Assembler
from ctxsynth.assemble.corpus import load_corpus
from ctxsynth.records import Seed, Synthesized


def make_pool(n: int = 40, words: int = 120, tasks: tuple[str, ...] = ("hotpotqa", "narrativeqa")) -> list[Synthesized]:
    """n records over real essay text; record i's answer is a unique code appended to its context."""
    chunks = load_corpus("essays", words)[:n]
    pool = []
    for i, (_, text) in enumerate(chunks):
        task = tasks[i % len(tasks)]
        answer = f"zeta{i:03d}code"
        seed = Seed(id=f"seed{i:03d}", task=task, instruction=f"What is code number {i}?", answer=answer)
        pool.append(Synthesized(id=f"rec{i:03d}", task=task, seed=seed, context=f"{text} The code is {answer}.",
                                provenance={}, verdicts={}))
    return pool


@functools.lru_cache(maxsize=32)
def cached_assembler(run_seed: int = 0, **options: object) -> Assembler:
    return Assembler(AssembleConfig(**options), make_pool(), run_seed)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pool() -> list[Synthesized]:
    return make_pool()
