"""Content-addressed SQLite request cache under every backend.

Each finished request is committed as soon as it arrives (WAL mode), so a kill -9 at any moment
loses nothing already received, and a rerun repeats no finished request. Failed requests are not
cached: a rerun tries them again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, ResultCallback, request_key
from ctxsynth.sqlite_store import SqliteStore

log = logging.getLogger(__name__)


class RequestCache:
    SCHEMA = ("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, identity TEXT, text TEXT,"
              " finish_reason TEXT, usage TEXT, created REAL);")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._store = SqliteStore(path, self.SCHEMA)

    def get(self, key: str) -> ChatResult | None:
        rows = self._store.query("SELECT text, finish_reason, usage FROM responses WHERE key = ?", (key,))
        if not rows:
            return None
        text, finish_reason, usage = rows[0]
        return ChatResult(text=text, finish_reason=finish_reason, usage=json.loads(usage), cached=True)

    def put(self, key: str, identity: dict, result: ChatResult) -> None:
        self._store.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
            (key, json.dumps(identity, sort_keys=True), result.text, result.finish_reason,
             json.dumps(result.usage, sort_keys=True), time.time()),
        )

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
