"""The distractor pool on disk: every kept context, tokenized once, in an SQLite file.

Assembly draws distractors from every synthesized context of the run, so holding the pool as
Python objects makes memory grow with the run. `build_pool` streams the synthesize stage's shards
once (in the driver, before any shard is assembled), indexes each document exactly as the
in-memory path does (`index_documents`: token count, boundary windows, normalised text, sketch)
and writes the rows in the in-memory pool's order: records sorted by id (the last record of a
repeated id wins), each record's documents in their order. `DocPool` is that file as a read-only
`Sequence[Doc]`: rows are read on demand, so a shard's memory is its own records plus the
documents it looks at. A `DocPool` pickles as its path and reopens in the process that uses it.
"""

from __future__ import annotations

import logging
import sqlite3
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast, overload

from ctxsynth.assemble.documents import Doc, index_documents
from ctxsynth.records import Synthesized
from ctxsynth.tokenize import Tokenizer

log = logging.getLogger(__name__)

_BATCH = 256
_COLUMNS = "id, task, text, n_tokens, head, middle, tail, norm, sketch, ends"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    pos INTEGER PRIMARY KEY, seq INTEGER, rid TEXT, k INTEGER,
    id TEXT, task TEXT, text TEXT, n_tokens INTEGER, head INTEGER, middle INTEGER, tail INTEGER,
    norm TEXT, sketch BLOB, ends BLOB)
"""


def pool_items(record: Synthesized) -> list[tuple[str, str, str]]:
    """(id, task, text) of a record's document(s): one per generated document when it has several."""
    if record.documents:
        return [(f"{record.id}#{k}", record.task, text) for k, text in enumerate(record.documents, 1)]
    return [(record.id, record.task, record.context)]


def _row(doc: Doc) -> tuple[Any, ...]:
    tail = len(doc.tail)
    return (doc.id, doc.task, doc.text, doc.n_tokens, len(doc.head), doc.middle, tail, doc.norm,
            array("I", doc.sketch).tobytes(), doc.ends)


def _doc(row: Sequence[Any]) -> Doc:
    doc_id, task, text, n_tokens, head, middle, tail, norm, sketch, ends = row
    return Doc(doc_id, task, text, n_tokens, text[:head], middle, text[len(text) - tail:] if tail else "", norm,
               tuple(array("I", sketch)), ends)


def build_pool(records: Iterable[Synthesized], tokenizer: Tokenizer, path: Path) -> int:
    """Index every record's documents into a new pool file at `path`; returns the document count."""
    part = path.with_name(f".{path.name}.part")
    try:
        index_records(records, tokenizer, part)
        return merge_pool([part], path)
    finally:
        part.unlink(missing_ok=True)


def index_records(records: Iterable[Synthesized], tokenizer: Tokenizer, path: Path) -> int:
    """Tokenize and index one run of records (e.g. one synth shard) into a part file, in input order;
    returns the number of records. Parts are independent: they can be made in parallel, then merged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA.format(table="docs"))
        n = _stage(db, records, tokenizer)
    finally:
        db.close()
    return n


def merge_pool(parts: Sequence[Path], path: Path) -> int:
    """The pool file of the parts (in input order) at `path`, written atomically; returns its document
    count. Memory: SQLite's page cache; the ordering by record id is SQLite's external sort."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    staging = path.with_name(f".{path.name}.staging")
    for p in (tmp, staging):
        p.unlink(missing_ok=True)
    columns = ", ".join("d." + c.strip() for c in _COLUMNS.split(","))
    db = sqlite3.connect(tmp)
    try:
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
        db.execute("ATTACH DATABASE ? AS staging", (str(staging),))
        db.execute(_SCHEMA.format(table="staging.docs"))
        for number, part in enumerate(parts):  # a record's place: (part, position in the part)
            db.execute("ATTACH DATABASE ? AS part", (str(part),))
            db.execute(f"INSERT INTO staging.docs (seq, rid, k, {_COLUMNS}) SELECT ? * 4294967296 + d.seq, d.rid, d.k, "
                       f"{columns} FROM part.docs d", (number,))
            db.commit()
            db.execute("DETACH DATABASE part")
        # without this index the join below compares every row with every group: quadratic in the pool
        db.execute("CREATE INDEX staging.docs_rid ON docs (rid, seq)")
        db.execute(_SCHEMA.format(table="main.docs"))
        db.execute(f"""INSERT INTO main.docs (seq, rid, k, {_COLUMNS}) SELECT d.seq, d.rid, d.k, {columns}
                       FROM staging.docs d JOIN (SELECT rid, MAX(seq) AS seq FROM staging.docs GROUP BY rid) last
                       ON d.rid = last.rid AND d.seq = last.seq ORDER BY d.rid, d.k""")
        db.commit()
        db.execute("DETACH DATABASE staging")
        db.execute("CREATE INDEX docs_id ON docs (id)")
        db.execute("CREATE INDEX docs_task ON docs (task, pos)")
        db.commit()
        n = db.execute("SELECT COUNT(*) FROM docs").fetchone()[0]
    finally:
        db.close()
        staging.unlink(missing_ok=True)
    tmp.replace(path)
    log.info("distractor pool: %d documents from %d part(s) in %s", n, len(parts), path)
    return int(n)


def _stage(db: sqlite3.Connection, records: Iterable[Synthesized], tokenizer: Tokenizer) -> int:
    batch: list[tuple[int, str, int, tuple[str, str, str]]] = []

    def flush() -> None:
        docs = index_documents(tokenizer, [item for _, _, _, item in batch])
        db.executemany(f"INSERT INTO docs (seq, rid, k, {_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       [(seq, rid, k, *_row(doc)) for (seq, rid, k, _), doc in zip(batch, docs, strict=True)])
        batch.clear()

    n = 0
    for n, record in enumerate(records, 1):
        for k, item in enumerate(pool_items(record)):
            batch.append((n - 1, record.id, k, item))
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    db.commit()
    return n


class DocPool(Sequence[Doc]):
    """A pool file as a read-only sequence of Docs in pool order (rows read on demand)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._len: int | None = None
        self._counts: array[int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"  # as_uri escapes spaces, '?' and '#'
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __len__(self) -> int:
        if self._len is None:
            self._len = int(self.db.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
        return self._len

    @overload
    def __getitem__(self, index: int) -> Doc: ...

    @overload
    def __getitem__(self, index: slice) -> list[Doc]: ...

    def __getitem__(self, index: int | slice) -> Doc | list[Doc]:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM docs WHERE pos BETWEEN ? AND ? ORDER BY pos",
                                   (start + 1, stop)).fetchall()
            return [_doc(r) for r in rows]
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(f"pool index {index} out of range ({n} documents)")
        return _doc(self.db.execute(f"SELECT {_COLUMNS} FROM docs WHERE pos = ?", (i + 1,)).fetchone())

    def __iter__(self) -> Iterator[Doc]:
        for row in self.db.execute(f"SELECT {_COLUMNS} FROM docs ORDER BY pos"):
            yield _doc(row)

    def get(self, doc_id: str) -> Doc | None:
        """The document with this id (the last one in pool order, as a dict built over the pool keeps)."""
        row = self.db.execute(f"SELECT {_COLUMNS} FROM docs WHERE id = ? ORDER BY pos DESC LIMIT 1",
                              (doc_id,)).fetchone()
        return None if row is None else _doc(row)

    def position(self, doc_id: str) -> int | None:
        """The 0-based pool position of the document with this id (the last one), or None."""
        row = self.db.execute("SELECT pos - 1 FROM docs WHERE id = ? ORDER BY pos DESC LIMIT 1", (doc_id,)).fetchone()
        return None if row is None else int(row[0])

    def positions_of(self, doc_id: str) -> set[int]:
        """Every 0-based position holding a document with this id."""
        return {int(r[0]) for r in self.db.execute("SELECT pos - 1 FROM docs WHERE id = ?", (doc_id,))}

    def token_counts(self) -> array[int]:
        """Token count per position (4 bytes a document), read once."""
        if self._counts is None:
            self._counts = array("i", (r[0] for r in self.db.execute("SELECT n_tokens FROM docs ORDER BY pos")))
        return self._counts

    def positions(self, task: str | None = None) -> Sequence[int]:
        """Pool positions (0-based) of the documents of `task` (all documents when None), in pool order."""
        if task is None:
            return range(len(self))
        rows = self.db.execute("SELECT pos - 1 FROM docs WHERE task = ? ORDER BY pos", (task,))
        return array("q", (r[0] for r in rows))

    def tasks(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT task FROM docs ORDER BY task")]


class LazyDoc:
    """A pool document known by position and token count; the row is read on first use of any other
    field. Selection walks hundreds of candidates per sample and reads most only for their count."""

    __slots__ = ("_doc", "_pool", "_position", "n_tokens")

    def __init__(self, pool: DocPool, position: int, n_tokens: int) -> None:
        self._pool, self._position, self.n_tokens = pool, position, n_tokens
        self._doc: Doc | None = None

    def load(self) -> Doc:
        if self._doc is None:
            self._doc = self._pool[self._position]
        return self._doc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load(), name)


def candidates_at(docs: Sequence[Doc], positions: Iterable[int], gold_id: str) -> Iterator[Doc]:
    """docs[p] for p in positions, without documents whose id is gold_id (a DocPool's lazily)."""
    if isinstance(docs, DocPool):
        skip = docs.positions_of(gold_id)
        counts = docs.token_counts()
        return (cast(Doc, LazyDoc(docs, p, counts[p])) for p in positions if p not in skip)
    return (doc for doc in map(docs.__getitem__, positions) if doc.id != gold_id)
