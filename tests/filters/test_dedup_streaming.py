"""The on-disk dedup index gives the verdicts of datasketch's in-memory MinHashLSH, whether the
records come in one batch or shard after shard, and keeps no record in Python memory."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from ctxsynth.eval.metrics import normalize_answer
from ctxsynth.filters.dedup import DedupFilter, DedupIndex, _shingles, find_duplicates
from ctxsynth.filters.verdict import Verdict
from ctxsynth.records import Seed
from ctxsynth.seeds import SeedsConfig, read_seeds


def in_memory_reference(ids: list[str], texts: list[str | None], threshold: float, num_perm: int,
                        shingle_chars: int | None = None, shingle_words: int | None = None) -> list[Verdict]:
    """The pre-streaming implementation (datasketch MinHashLSH in memory); equal similarities resolve
    to the earliest record."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    seen: dict[str, str] = {}
    hashes: dict[str, MinHash] = {}
    order: dict[str, int] = {}
    out = []
    for rid, text in zip(ids, texts, strict=True):
        if text is None:
            out.append(Verdict.kept("nothing to compare"))
            continue
        norm = normalize_answer(text)
        digest = hashlib.sha256(norm.encode()).hexdigest()
        if digest in seen:
            out.append(Verdict.drop("duplicate_exact", f"duplicate_of={seen[digest]}", duplicate_of=seen[digest],
                                    similarity=1.0))
            continue
        mh = MinHash(num_perm=num_perm, seed=1)
        mh.update_batch([s.encode() for s in _shingles(norm, shingle_chars, shingle_words)])
        found = sorted((-hashes[k].jaccard(mh), order[k], k) for k in lsh.query(mh))
        if found and -found[0][0] >= threshold:
            best, sim = found[0][2], -found[0][0]
            out.append(Verdict.drop("duplicate_near", f"duplicate_of={best} (jaccard~{sim:.2f})", duplicate_of=best,
                                    similarity=round(sim, 4)))
            continue
        seen[digest] = rid
        if rid not in hashes:
            lsh.insert(rid, mh)
            hashes[rid] = mh
            order[rid] = len(order)
        out.append(Verdict.kept())
    return out


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], list[str | None]]:
    """Real questions, with exact (case, punctuation) and near (one or two typos) copies planted."""
    seeds = [s for src in ("squad", "hotpotqa") for s in read_seeds(SeedsConfig(source=src, limit=150, sample_seed=5))
             if isinstance(s, Seed)]
    rng = random.Random(4)
    ids = [s.id for s in seeds]
    texts: list[str | None] = [f"{s.instruction} || {' | '.join(s.answers)}" for s in seeds]
    for k in range(60):
        i = rng.randrange(len(seeds))
        source = texts[i]
        assert source is not None
        if k % 3 == 0:
            copy = source.upper() + "?!"
        else:
            chars = list(source)
            for _ in range(1 + k % 2):
                j = rng.randrange(len(chars))
                chars[j] = "#"
            copy = "".join(chars)
        ids.insert(rng.randrange(i + 1, len(ids) + 1), f"copy{k}")
        texts.insert(ids.index(f"copy{k}"), copy)
    ids.append("none")
    texts.append(None)
    return ids, texts


@pytest.mark.parametrize("threshold", [0.85, 0.7])
def test_disk_index_matches_datasketch_in_memory(texts: tuple[list[str], list[str | None]], threshold: float) -> None:
    ids, values = texts
    expected = in_memory_reference(ids, values, threshold, 128, shingle_chars=5)
    got = find_duplicates(ids, values, threshold=threshold, num_perm=128, shingle_chars=5)
    assert got == expected
    dropped = [v for v in got if not v.keep]
    assert any(v.reason == "duplicate_exact" for v in dropped) and any(v.reason == "duplicate_near" for v in dropped)


def test_batches_checked_in_order_dedup_globally(texts: tuple[list[str], list[str | None]], tmp_path: Path) -> None:
    ids, values = texts
    seeds = [Seed(id=i, task="qa", instruction=t or "", answer="x", context=t) for i, t in zip(ids, values, strict=True)]
    whole = find_duplicates(ids, values, threshold=0.85, num_perm=128, shingle_words=2, label="_context")
    check = DedupFilter("dedup_context", lambda s: s.context, tmp_path / "work", threshold=0.85, num_perm=128,
                        shingle_words=2, label="_context")
    batches = [seeds[i : i + 37] for i in range(0, len(seeds), 37)]
    got = [v for batch in batches for v in check.check(batch)]
    assert (tmp_path / "work" / "dedup_context.sqlite").exists()  # the index is on disk
    check.close()
    assert not (tmp_path / "work" / "dedup_context.sqlite").exists()
    assert got == whole and sum(not v.keep for v in got) >= 20


def test_a_new_index_forgets_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    first = DedupIndex(path, threshold=0.8, num_perm=64, shingle_chars=5)
    assert first.check("a", "the same question text").keep
    first.db.commit()
    first.db.close()
    second = DedupIndex(path, threshold=0.8, num_perm=64, shingle_chars=5)  # e.g. a rerun after a crash
    assert second.check("b", "the same question text").keep
    assert not second.check("c", "The same question text!").keep
    second.close()
