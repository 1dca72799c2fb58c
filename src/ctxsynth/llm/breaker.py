"""A circuit breaker between the request cache and a backend: stop paying for a dead endpoint.

It watches results as they arrive. An auth (401/403) or unknown-model (404) failure before any
success trips it at once; otherwise `max_consecutive` infrastructure failures in a row do. Tripping
raises `BackendUnavailable` naming the endpoint, the status and the fix; the stage that called it
stops without marking its shard complete. Answers that arrived before are already in the request
cache (the cache sits above the breaker), so the rerun sends only what is still unanswered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from ctxsynth.errors import BackendUnavailable
from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, RequestQueue, ResultCallback
from ctxsynth.llm.failures import INFRASTRUCTURE, failure_kind, status_of

log = logging.getLogger(__name__)

FIXES = {
    "auth": "the server refused the API key: check the key in {key_env} and that it may use this model",
    "not_found": "the server does not know model {model!r} (or the URL): check the model name and base_url",
    "rate_limit": "rate limits outlasted every retry: lower max_concurrency or raise your provider limits",
    "outage": "the endpoint is unreachable or failing: check that the server is up at {endpoint}",
}


class CircuitBreaker(Backend):
    def __init__(self, inner: Backend, endpoint: str, max_consecutive: int = 20, key_env: str | None = None) -> None:
        super().__init__(inner.model)
        if max_consecutive < 1:
            raise ValueError("max_consecutive must be >= 1")
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.raw_prompts = inner.raw_prompts  # type: ignore[misc]  # plain text passes through (RULER, LongBench)
        self.reuses_prompt_ids = inner.reuses_prompt_ids  # type: ignore[misc]
        self.endpoint = endpoint
        self.max_consecutive = max_consecutive
        self.key_variable = key_env or "the API key variable"
        self.successes = 0
        self.consecutive = 0

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def observe(self, result: ChatResult) -> None:
        """Count one result; raise BackendUnavailable when the breaker trips."""
        kind = failure_kind(result)
        if kind is None or kind not in INFRASTRUCTURE:
            self.successes += kind is None
            self.consecutive = 0
            return
        self.consecutive += 1
        fatal_now = kind in ("auth", "not_found") and self.successes == 0
        if fatal_now or self.consecutive >= self.max_consecutive:
            raise self.unavailable(kind, result.error or "", self.consecutive)

    def unavailable(self, kind: str, error: str, count: int) -> BackendUnavailable:
        status = status_of(error)
        fix = FIXES[kind].format(key_env=self.key_variable, model=self.model, endpoint=self.endpoint)
        what = f"HTTP {status}" if status else error.split(":")[0]
        seen = "on the first request" if count == 1 else f"on {count} requests in a row"
        return BackendUnavailable(f"{self.endpoint}: {what} {seen} ({kind}); {fix}. Nothing was marked complete: "
                                  "rerun the same command to resume", endpoint=self.endpoint, status=status, cause=kind)

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        seen: set[int] = set()

        def watch(i: int, result: ChatResult) -> None:
            if i not in seen:
                seen.add(i)
                self.observe(result)
            if on_result is not None:
                on_result(i, result)

        results = self.inner.generate(requests, on_result=watch)
        for i, result in enumerate(results):  # backends that do not call back
            if i not in seen:
                watch(i, result)
        return results

    def stream(self, requests: Iterable[ChatRequest] | RequestQueue, on_result: ResultCallback) -> None:
        """Streams through the inner backend, counting each result as it arrives (a trip raises out
        of the callback, which stops the stream)."""

        def watch(i: int, result: ChatResult) -> None:
            self.observe(result)
            on_result(i, result)

        self.inner.stream(requests, watch)

    def close(self) -> None:
        self.inner.close()
