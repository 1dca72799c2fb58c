"""Exact and near-duplicate detection (MinHash LSH from `datasketch`); the first record wins.

Texts are normalised (SQuAD/LongBench rules) before hashing, so case and punctuation differences
are exact duplicates. Near duplicates are found by MinHash over shingles: character n-grams for
short texts (seed instruction + answer), word n-grams for contexts; the LSH candidate is confirmed
with the MinHash Jaccard estimate before a record is dropped. Each dropped record names the id it
duplicates ("duplicate_of"), so nothing is lost without saying where its twin is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ctxsynth.eval.metrics import normalize_answer
from ctxsynth.filters.config import FiltersConfig
from ctxsynth.filters.registry import Filter, FilterContext, FunctionFilter
from ctxsynth.filters.verdict import Verdict


def _shingles(text: str, chars: int | None, words: int | None) -> set[str]:
    if chars:
        return {text[i : i + chars] for i in range(max(1, len(text) - chars + 1))}
    tokens = text.split()
    n = words or 1
    return {" ".join(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))}


def find_duplicates(ids: Sequence[str], texts: Sequence[str | None], *, threshold: float, num_perm: int,
                    shingle_chars: int | None = None, shingle_words: int | None = None,
                    label: str = "") -> list[Verdict]:
    """A verdict per text: the first of each (near-)duplicate group is kept, the others dropped with
    "duplicate{label}_exact" or "duplicate{label}_near". None texts are kept unchecked."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    seen: dict[str, str] = {}  # sha of normalised text -> first id
    hashes: dict[str, MinHash] = {}
    verdicts: list[Verdict] = []
    for rid, text in zip(ids, texts, strict=True):
        if text is None:
            verdicts.append(Verdict.kept("nothing to compare"))
            continue
        norm = normalize_answer(text)
        digest = hashlib.sha256(norm.encode()).hexdigest()
        if digest in seen:
            verdicts.append(Verdict.drop(f"duplicate{label}_exact", f"duplicate_of={seen[digest]}",
                                         duplicate_of=seen[digest], similarity=1.0))
            continue
        mh = MinHash(num_perm=num_perm, seed=1)
        mh.update_batch([s.encode() for s in _shingles(norm, shingle_chars, shingle_words)])
        best = max(((k, hashes[k].jaccard(mh)) for k in lsh.query(mh)), key=lambda kv: kv[1], default=None)
        if best is not None and best[1] >= threshold:
            verdicts.append(Verdict.drop(f"duplicate{label}_near", f"duplicate_of={best[0]} (jaccard~{best[1]:.2f})",
                                         duplicate_of=best[0], similarity=round(best[1], 4)))
            continue
        seen[digest] = rid
        if rid not in hashes:
            lsh.insert(rid, mh)
            hashes[rid] = mh
        verdicts.append(Verdict.kept())
    return verdicts


def from_config(config: FiltersConfig, context: FilterContext) -> list[Filter]:
    """Seeds (instruction + answers, character shingles) and, optionally, contexts (word shingles)."""
    c = config.dedup
    if not c.enabled:
        return []
    checks: list[Filter] = []
    if c.seeds:
        checks.append(FunctionFilter("dedup", lambda s: find_duplicates(
            [x.id for x in s], [f"{x.instruction} || {' | '.join(x.answers)}" for x in s],
            threshold=c.threshold, num_perm=c.num_perm, shingle_chars=c.shingle_chars)))
    if c.contexts:
        checks.append(FunctionFilter("dedup_context", lambda s: find_duplicates(
            [x.id for x in s], [x.context for x in s], threshold=c.threshold, num_perm=c.num_perm,
            shingle_words=c.shingle_words, label="_context")))
    return checks
