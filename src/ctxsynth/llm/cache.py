"""Content-addressed SQLite request cache under every backend.

Each finished request is committed as soon as it arrives (WAL mode), so a kill -9 at any moment
loses nothing already received, and a rerun repeats no finished request. Failed requests are not
cached: a rerun tries them again. Answers cut at the token budget are cached (the same request
gets the same cut), so a resumed run does not pay for them twice.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from ctxsynth.errors import InputError
from ctxsynth.io import ResourceError
from ctxsynth.llm.base import (
    Backend,
    ChatRequest,
    ChatResult,
    RequestQueue,
    ResultCallback,
    as_queue,
    request_key,
)
from ctxsynth.sqlite_store import SqliteStore

log = logging.getLogger(__name__)


def damaged_cache(path: Path, error: BaseException) -> InputError:
    if "locked" in str(error) or "busy" in str(error):  # another process holds it: not damage
        raise error
    return InputError(f"{path}: the request cache is damaged ({error}); delete it (and any {path.name}-wal and "
                      f"{path.name}-shm beside it) to start a fresh one: requests it held are paid again")


def check_cache(path: Path) -> None:
    """A request cache that exists is an SQLite database with its table: else the InputError that
    names it and the fix. Cheap (the header and the schema), so it runs before any output is discarded."""
    if not path.exists() or path.stat().st_size == 0:  # an empty file: killed before its table was made
        return
    try:
        db = sqlite3.connect(str(path))
        try:
            db.execute("SELECT key FROM responses LIMIT 1").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as error:  # "file is not a database", "malformed", "no such table"
        raise damaged_cache(path, error) from None


class RequestCache:
    SCHEMA = ("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, identity TEXT, text TEXT,"
              " finish_reason TEXT, usage TEXT, created REAL);")

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._store = SqliteStore(path, self.SCHEMA)
        except sqlite3.DatabaseError as error:
            raise damaged_cache(path, error) from None

    def get(self, key: str) -> ChatResult | None:
        try:
            rows = self._store.query("SELECT text, finish_reason, usage FROM responses WHERE key = ?", (key,))
        except sqlite3.DatabaseError as error:
            raise damaged_cache(self.path, error) from None
        if not rows:
            return None
        text, finish_reason, usage = rows[0]
        return ChatResult(text=text, finish_reason=finish_reason, usage=json.loads(usage), cached=True)

    def put(self, key: str, identity: dict, result: ChatResult) -> None:
        try:
            self._store.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                (key, json.dumps(identity, sort_keys=True), result.text, result.finish_reason,
                 json.dumps(result.usage, sort_keys=True), time.time()),
            )
        except sqlite3.OperationalError as error:
            if "full" not in str(error):  # "database or disk is full"
                raise
            raise ResourceError(errno.ENOSPC, f"{self.path}: {error}; free space on that file system, then rerun "
                                "the same command (the answers cached before this one are kept)") from None

    def __len__(self) -> int:
        return int(self._store.query("SELECT COUNT(*) FROM responses")[0][0])

    def close(self) -> None:
        self._store.close()


class CachedBackend(Backend):
    """Wraps a backend: answers hits from the cache, sends only misses, stores each answer."""

    def __init__(self, inner: Backend, cache: RequestCache) -> None:
        super().__init__(inner.model)
        self.inner = inner
        self.cache = cache
        self.name = inner.name  # type: ignore[misc]
        self.reuses_prompt_ids = inner.reuses_prompt_ids  # type: ignore[misc]

    def identity(self) -> dict:
        return self.inner.identity()

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        results: list[ChatResult | None] = [None] * len(requests)

        def collect(i: int, result: ChatResult) -> None:
            results[i] = result
            if on_result:
                on_result(i, result)

        self.stream(requests, collect)
        return [r if r is not None else ChatResult(None, None, error="backend returned no result") for r in results]

    def stream(self, requests: Iterable[ChatRequest] | RequestQueue, on_result: ResultCallback) -> None:
        """Hits go to `on_result` as they are taken; misses stream through the inner backend and
        are stored as they arrive. Identical requests in flight together are sent once; only the
        requests in flight are remembered, so memory does not grow with the number of requests."""
        outer = as_queue(requests)
        identity = self.inner.identity()
        waiting: dict[str, list[int]] = {}  # key in flight -> outer positions
        keys: dict[int, str] = {}  # inner index -> key
        counts = {"hits": 0, "sent": 0}
        cache = self.cache

        class Misses(RequestQueue):
            def take(self) -> tuple[int, ChatRequest] | None:
                while (item := outer.take()) is not None:
                    i, request = item
                    key = request_key(identity, request)
                    if key in waiting:
                        waiting[key].append(i)
                        continue
                    hit = cache.get(key)
                    if hit is not None:
                        counts["hits"] += 1
                        on_result(i, hit)
                        continue
                    waiting[key] = [i]
                    keys[self.taken] = key
                    counts["sent"] += 1
                    self.taken += 1
                    return self.taken - 1, request
                return None

        def store(j: int, result: ChatResult) -> None:
            key = keys.pop(j)
            if result.answered:  # truncated replies too: the same request gets the same cut reply
                cache.put(key, identity, result)
            for n, i in enumerate(waiting.pop(key)):
                on_result(i, result if n == 0 else dataclasses.replace(result))

        self.inner.stream(Misses(), store)
        log.info("cache: %d hits, %d requests sent", counts["hits"], counts["sent"])

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
