"""One SQLite file shared by the threads of a process: the storage under the request cache and the
reliance score cache.

WAL journaling (readers never block the writer, a killed process loses at most the statement in
flight), autocommit (every write is durable as soon as it returns), one lock around the connection
(sqlite3 connections are not safe to share between threads on their own).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class SqliteStore:
    def __init__(self, path: Path, schema: str) -> None:
        """Open (creating the folder and the tables in `schema`, a CREATE ... IF NOT EXISTS script)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        # switching a new file to WAL takes an exclusive lock for which SQLite's busy handler does not
        # wait: worker processes opening one fresh cache together get "database is locked" at once
        for attempt in itertools.count():
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(schema)
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt >= 300:
                    raise
                time.sleep(0.1)

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
