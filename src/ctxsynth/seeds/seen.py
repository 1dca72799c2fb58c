"""Where each seed id was first seen, kept in a temporary SQLite file instead of a dict, so the
duplicate-id check of the seed readers does not grow memory with the number of seeds (a million
ids in a dict is a few hundred MB; here it is SQLite's page cache)."""

from __future__ import annotations

import os
import sqlite3
import tempfile

from ctxsynth.seeds.sources import Location


class SeenIds:
    """`first(id, where)`: None the first time an id comes, else the Location it first came from."""

    def __init__(self) -> None:
        fd, self._path = tempfile.mkstemp(prefix="ctxsynth-seen-", suffix=".sqlite")
        os.close(fd)
        self._db = sqlite3.connect(self._path)
        self._db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                               "CREATE TABLE seen (id TEXT PRIMARY KEY, path TEXT, line INTEGER, unit TEXT);")

    def first(self, seed_id: str, where: Location) -> Location | None:
        try:
            self._db.execute("INSERT INTO seen VALUES (?, ?, ?, ?)", (seed_id, where.path, where.line, where.unit))
            return None
        except sqlite3.IntegrityError:
            path, line, unit = self._db.execute("SELECT path, line, unit FROM seen WHERE id = ?", (seed_id,)).fetchone()
            return Location(path, line, unit)

    def close(self) -> None:
        self._db.close()
        if os.path.exists(self._path):
            os.unlink(self._path)
