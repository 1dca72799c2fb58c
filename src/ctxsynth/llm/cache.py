"""Content-addressed SQLite request cache under every backend.

Each finished request is committed as soon as it arrives (WAL mode), so a kill -9 at any moment
loses nothing already received, and a rerun repeats no finished request. Failed requests are not
cached: a rerun tries them again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, ResultCallback, request_key

log = logging.getLogger(__name__)


class RequestCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, identity TEXT, text TEXT,"
            " finish_reason TEXT, usage TEXT, created REAL)"
        )

    def get(self, key: str) -> ChatResult | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, finish_reason, usage FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return ChatResult(text=row[0], finish_reason=row[1], usage=json.loads(row[2]), cached=True)

    def put(self, key: str, identity: dict, result: ChatResult) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                (key, json.dumps(identity, sort_keys=True), result.text, result.finish_reason,
                 json.dumps(result.usage, sort_keys=True), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedBackend(Backend):
    """Wraps a backend: answers hits from the cache, sends only misses, stores each answer."""

    def __init__(self, inner: Backend, cache: RequestCache) -> None:
        super().__init__(inner.model)
        self.inner = inner
        self.cache = cache
        self.name = inner.name  # type: ignore[misc]

    def identity(self) -> dict:
        return self.inner.identity()

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        identity = self.inner.identity()
        keys = [request_key(identity, r) for r in requests]
        results: list[ChatResult | None] = [None] * len(requests)
        waiting: dict[str, list[int]] = {}  # key -> positions; identical requests are sent once
        for i, key in enumerate(keys):
            if key in waiting:
                waiting[key].append(i)
                continue
            hit = self.cache.get(key)
            if hit is None:
                waiting[key] = [i]
            else:
                results[i] = hit
                if on_result:
                    on_result(i, hit)
        if waiting:
            sent = list(waiting)
            log.info("cache: %d hits, %d requests to send", len(requests) - len(sent), len(sent))

            def store(j: int, result: ChatResult) -> None:
                positions = waiting[sent[j]]
                if results[positions[0]] is not None:  # already stored through the callback
                    return
                if result.ok:
                    self.cache.put(sent[j], identity, result)
                for n, i in enumerate(positions):
                    results[i] = result if n == 0 else dataclasses.replace(result)
                    if on_result:
                        on_result(i, results[i])  # type: ignore[arg-type]

            returned = self.inner.generate([requests[waiting[k][0]] for k in sent], on_result=store)
            for j, result in enumerate(returned):  # backends that do not call back still get cached
                store(j, result)
        return [r if r is not None else ChatResult(None, None, error="backend returned no result") for r in results]

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
