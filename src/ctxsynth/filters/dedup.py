"""Exact and near-duplicate detection (MinHash LSH, `datasketch` MinHashes); the first record wins.

Texts are normalised (SQuAD/LongBench rules) before hashing, so case and punctuation differences
are exact duplicates. Near duplicates are found by MinHash over shingles: character n-grams for
short texts (seed instruction + answer), word n-grams for contexts; the LSH candidate is confirmed
with the MinHash Jaccard estimate before a record is dropped. Each dropped record names the id it
duplicates ("duplicate_of"), so nothing is lost without saying where its twin is.

The index is a streaming pass over the records in order and lives in an SQLite file, not in
memory: exact digests, the LSH band keys (datasketch's banding: `MinHashLSH(threshold, num_perm)`
chooses the bands; each band key is stored as a 16-byte BLAKE2 digest of datasketch's key bytes)
and each kept record's hash values for the Jaccard confirmation. Memory stays flat however many
records pass; a filter object checks batch after batch (shard after shard) against one index.
Among candidates of equal estimated similarity, the earliest record is named.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctxsynth.eval.metrics import normalize_answer
from ctxsynth.filters.config import FiltersConfig
from ctxsynth.filters.registry import Filter, FilterContext
from ctxsynth.filters.verdict import Verdict
from ctxsynth.records import Seed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exact (digest BLOB PRIMARY KEY, rid TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hashes (seq INTEGER PRIMARY KEY, rid TEXT UNIQUE, hv BLOB);
CREATE TABLE IF NOT EXISTS bands (key BLOB, seq INTEGER);
CREATE INDEX IF NOT EXISTS bands_key ON bands (key);
"""


def _shingles(text: str, chars: int | None, words: int | None) -> set[str]:
    if chars:
        return {text[i : i + chars] for i in range(max(1, len(text) - chars + 1))}
    tokens = text.split()
    n = words or 1
    return {" ".join(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))}


class DedupIndex:
    """Records seen so far (exact digests, LSH bands, hash values) in an SQLite file."""

    def __init__(self, path: Path, *, threshold: float, num_perm: int, shingle_chars: int | None = None,
                 shingle_words: int | None = None, label: str = "") -> None:
        from datasketch import MinHashLSH

        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)  # only for its choice of bands
        self.ranges = list(lsh.hashranges)
        self.threshold, self.num_perm = threshold, num_perm
        self.shingle_chars, self.shingle_words, self.label = shingle_chars, shingle_words, label
        self.path = Path(path)
        self.path.unlink(missing_ok=True)  # a fresh pass: nothing is seen before the first record
        self.db = sqlite3.connect(self.path)
        self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)

    def _minhash(self, norm: str) -> np.ndarray:
        from datasketch import MinHash

        mh = MinHash(num_perm=self.num_perm, seed=1)
        mh.update_batch([s.encode() for s in _shingles(norm, self.shingle_chars, self.shingle_words)])
        return mh.hashvalues

    def _keys(self, hv: np.ndarray) -> list[bytes]:
        return [hashlib.blake2b(bytes([b % 256, b // 256]) + bytes(hv[start:end].byteswap().data),
                                digest_size=16).digest() for b, (start, end) in enumerate(self.ranges)]

    def _best(self, hv: np.ndarray, keys: list[bytes]) -> tuple[str, float] | None:
        marks = ",".join("?" * len(keys))
        rows = self.db.execute(f"SELECT h.seq, h.rid, h.hv FROM hashes h WHERE h.seq IN "
                               f"(SELECT DISTINCT seq FROM bands WHERE key IN ({marks})) ORDER BY h.seq",
                               keys).fetchall()
        best: tuple[str, float] | None = None
        for _, rid, blob in rows:
            other = np.frombuffer(blob, dtype=hv.dtype)
            similarity = float(np.count_nonzero(other == hv)) / float(self.num_perm)
            if best is None or similarity > best[1]:
                best = (rid, similarity)
        return best

    def check(self, rid: str, text: str | None) -> Verdict:
        """Keep (and remember) the record, or drop it as a duplicate of an earlier one."""
        if text is None:
            return Verdict.kept("nothing to compare")
        norm = normalize_answer(text)
        digest = hashlib.sha256(norm.encode()).digest()
        row = self.db.execute("SELECT rid FROM exact WHERE digest = ?", (digest,)).fetchone()
        if row is not None:
            return Verdict.drop(f"duplicate{self.label}_exact", f"duplicate_of={row[0]}", duplicate_of=row[0],
                                similarity=1.0)
        hv = self._minhash(norm)
        keys = self._keys(hv)
        best = self._best(hv, keys)
        if best is not None and best[1] >= self.threshold:
            return Verdict.drop(f"duplicate{self.label}_near", f"duplicate_of={best[0]} (jaccard~{best[1]:.2f})",
                                duplicate_of=best[0], similarity=round(best[1], 4))
        self.db.execute("INSERT INTO exact (digest, rid) VALUES (?, ?)", (digest, rid))
        cursor = self.db.execute("INSERT OR IGNORE INTO hashes (rid, hv) VALUES (?, ?)", (rid, hv.tobytes()))
        if cursor.rowcount:
            self.db.executemany("INSERT INTO bands (key, seq) VALUES (?, ?)", [(k, cursor.lastrowid) for k in keys])
        return Verdict.kept()

    def check_all(self, ids: Sequence[str], texts: Sequence[str | None]) -> list[Verdict]:
        verdicts = [self.check(rid, text) for rid, text in zip(ids, texts, strict=True)]
        self.db.commit()
        return verdicts


def find_duplicates(ids: Sequence[str], texts: Sequence[str | None], *, threshold: float, num_perm: int,
                    shingle_chars: int | None = None, shingle_words: int | None = None,
                    label: str = "") -> list[Verdict]:
    """A verdict per text: the first of each (near-)duplicate group is kept, the others dropped with
    "duplicate{label}_exact" or "duplicate{label}_near". None texts are kept unchecked."""
    with tempfile.TemporaryDirectory(prefix="ctxsynth-dedup-") as tmp:
        index = DedupIndex(Path(tmp) / "dedup.sqlite", threshold=threshold, num_perm=num_perm,
                           shingle_chars=shingle_chars, shingle_words=shingle_words, label=label)
        try:
            return index.check_all(ids, texts)
        finally:
            index.close()


class DedupFilter:
    """A dedup check whose index persists across calls: batches checked in order dedup globally."""

    global_pass = True  # the first record of a group wins: it sees every record, in order

    def __init__(self, name: str, text: Callable[[Seed], str | None], work_dir: Path | None,
                 **options: Any) -> None:
        self.name = name
        self.text = text
        self.options = options
        self.work_dir = work_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._index: DedupIndex | None = None

    def index(self) -> DedupIndex:
        if self._index is None:
            folder = self.work_dir
            if folder is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="ctxsynth-dedup-")
                folder = Path(self._tmp.name)
            folder.mkdir(parents=True, exist_ok=True)
            self._index = DedupIndex(folder / f"{self.name}.sqlite", **self.options)
        return self._index

    def check(self, seeds: Sequence[Seed]) -> list[Verdict]:
        return self.index().check_all([s.id for s in seeds], [self.text(s) for s in seeds])

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def from_config(config: FiltersConfig, context: FilterContext) -> list[Filter]:
    """Seeds (instruction + answers, character shingles) and, optionally, contexts (word shingles)."""
    c = config.dedup
    if not c.enabled:
        return []
    checks: list[Filter] = []
    if c.seeds:
        checks.append(DedupFilter("dedup", lambda x: f"{x.instruction} || {' | '.join(x.answers)}", context.work_dir,
                                  threshold=c.threshold, num_perm=c.num_perm, shingle_chars=c.shingle_chars))
    if c.contexts:
        checks.append(DedupFilter("dedup_context", lambda x: x.context, context.work_dir, threshold=c.threshold,
                                  num_perm=c.num_perm, shingle_words=c.shingle_words, label="_context"))
    return checks
