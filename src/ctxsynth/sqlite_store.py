"""One SQLite file shared by the threads of a process: the storage under the request cache and the
reliance score cache.

WAL journaling (readers never block the writer, a killed process loses at most the statement in
flight), autocommit (every write is durable as soon as it returns), one lock around the connection
(sqlite3 connections are not safe to share between threads on their own).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class SqliteStore:
    def __init__(self, path: Path, schema: str) -> None:
        """Open (creating the folder and the tables in `schema`, a CREATE ... IF NOT EXISTS script)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(schema)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock:
            self._db.execute(sql, params)

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock:
            self._db.executemany(sql, rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
