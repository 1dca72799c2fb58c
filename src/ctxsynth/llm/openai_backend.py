"""The `openai` backend: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, SGLang, ...).

Requests go out concurrently through the official async client with its own retries switched
off, because retrying is done here where it can be counted and shaped: exponential backoff with
full jitter, Retry-After honoured (seconds, HTTP date or retry-after-ms), retries on 429, 408,
409, 5xx, timeouts, dropped connections and undecodable replies, and an adaptive concurrency
limit that halves on 429 and grows back by one slot per window of successes. Every request ends
as a `ChatResult`, answered or failed with a short reason; a batch never raises for one request.

The API key is read from the environment when `generate` is called and handed to the client
only; it is never logged, never part of `identity()` (hence never in the cache) and scrubbed from
error text. A local server without the variable set gets a placeholder key.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timezone
from typing import Any
from urllib.parse import urlsplit

from ctxsynth.errors import ConfigError, MissingAPIKeyError
from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, ResultCallback

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
PLACEHOLDER_KEY = "sk-local-no-key"


@dataclass(frozen=True)
class _Failure:
    reason: str  # final error text if no retry is left
    retryable: bool
    retry_after: float | None = None
    rate_limited: bool = False


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if not value:
            continue
        seconds: float | None
        try:
            seconds = float(value) / scale
        except ValueError:
            seconds = _seconds_until_http_date(value, now) if scale == 1.0 else None
        if seconds is not None and math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def _seconds_until_http_date(value: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() - now


def backoff_delay(attempt: int, base_s: float, max_s: float, retry_after: float | None, rng: random.Random) -> float:
    """The server's Retry-After when given (capped at `max_s`), else exponential backoff with full
    jitter: uniform(0, min(max_s, base_s * 2 ** (attempt - 1)))."""
    if retry_after is not None:
        return min(retry_after, max_s)
    return rng.uniform(0.0, min(max_s, base_s * 2 ** (attempt - 1)))


class AdaptiveLimit:
    """At most `value` requests in flight: halved on a 429, regaining one slot per `value`
    successes, never above the configured maximum. Replies to requests sent before the last cut
    do not cut again, so one burst of 429s halves the limit once."""

    def __init__(self, maximum: int, start: float | None = None) -> None:
        self.maximum = maximum
        self.value = min(float(maximum), start or float(maximum))
        self._in_flight = 0
        self._last_cut = -math.inf
        self._cond = asyncio.Condition()  # create inside the running loop

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        cond = self._cond
        async with cond:
            await cond.wait_for(lambda: self._in_flight < max(1, int(self.value)))
            self._in_flight += 1
        started = time.monotonic()
        try:
            yield started
        finally:
            async with cond:
                self._in_flight -= 1
                cond.notify_all()

    def cut(self, started: float) -> None:
        if started >= self._last_cut:
            self.value = max(1.0, self.value / 2)
            self._last_cut = time.monotonic()
            log.info("rate limited: concurrency limit now %d", int(self.value))

    def grow(self) -> None:
        self.value = min(float(self.maximum), self.value + 1.0 / self.value)


def _is_local(base_url: str | None) -> bool:
    if base_url is None:
        return False
    host = (urlsplit(base_url).hostname or "").lower()
    return host in LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


class OpenAIBackend(Backend):
    """Chat completions from an OpenAI-compatible endpoint; see the module docstring.

    base_url: the endpoint up to /v1 (None: OPENAI_BASE_URL if set, as the client does, else
    api.openai.com); api_key_env: the variable holding the
    key; max_concurrency: requests in flight at most (the adaptive limit never exceeds it);
    timeout_s: per attempt; max_retries: retries after the first attempt; backoff_base_s and
    backoff_max_s: the jittered exponential backoff; extra_body: fields merged into every request
    body (e.g. vLLM's top_k), part of the cache identity; max_tokens_field: the body field that
    carries the reply budget, "max_tokens" (most servers) or "max_completion_tokens" (OpenAI's
    reasoning models refuse max_tokens).
    """

    name = "openai"
    key_env_var = "OPENAI_API_KEY"
    key_env_option = "api_key_env"

    @classmethod
    def key_env(cls, options: Mapping[str, Any]) -> str | None:
        """No key for a local server (base_url, else OPENAI_BASE_URL, on this machine)."""
        base_url = options.get("base_url") or os.environ.get("OPENAI_BASE_URL")
        return None if _is_local(base_url) else super().key_env(options)

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 6,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        extra_body: dict[str, Any] | None = None,
        max_tokens_field: str = "max_tokens",
    ) -> None:
        super().__init__(model)
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ConfigError("need max_concurrency >= 1, max_retries >= 0 and timeout_s > 0")
        if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(f"max_tokens_field must be 'max_tokens' or 'max_completion_tokens', not {max_tokens_field!r}")
        import openai  # noqa: F401 - fail early, at construction, if the client is missing

        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.extra_body = dict(extra_body or {})
        self.max_tokens_field = max_tokens_field
        self.concurrency_limit = float(max_concurrency)  # adaptive; carried from one batch to the next
        self._rng = random.Random()

    def identity(self) -> dict[str, Any]:
        """Backend, model and extra body fields. The base URL is left out on purpose: the same
        model behind another port or proxy gives the same answers, and URLs can carry credentials."""
        ident = super().identity()
        if self.extra_body:
            ident["extra_body"] = self.extra_body
        return ident

    def sampling_fields(self, request: ChatRequest) -> dict[str, Any]:
        """The body fields that carry a request's sampling parameters (seed only when set)."""
        p = request.params
        fields: dict[str, Any] = {"temperature": p.temperature, "top_p": p.top_p, self.max_tokens_field: p.max_tokens}
        if p.seed is not None:
            fields["seed"] = p.seed
        return fields

    def _base_url(self) -> str | None:
        """The endpoint the client will call: base_url, else OPENAI_BASE_URL (the client's fallback)."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        base_url = self._base_url()
        if _is_local(base_url):
            return PLACEHOLDER_KEY
        host = urlsplit(base_url).hostname if base_url else "api.openai.com"
        raise MissingAPIKeyError(
            f"the openai backend needs an API key for {host}: set the environment variable "
            f"{self.api_key_env} (the key is read from the environment only)"
        )

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        if not requests:
            return []
        key = self._api_key()
        coro = self._run(list(requests), on_result, key)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        with ThreadPoolExecutor(max_workers=1) as pool:  # called from inside a running loop
            return pool.submit(asyncio.run, coro).result()

    async def _run(self, requests: list[ChatRequest], on_result: ResultCallback | None, key: str) -> list[ChatResult]:
        import openai

        client = openai.AsyncOpenAI(api_key=key, base_url=self._base_url(), max_retries=0, timeout=self.timeout_s)
        limit = AdaptiveLimit(self.max_concurrency, start=self.concurrency_limit)
        try:
            results = await asyncio.gather(
                *(self._one(client, limit, i, req, on_result, key) for i, req in enumerate(requests))
            )
        finally:
            self.concurrency_limit = limit.value
            await client.close()
        failed = sum(1 for r in results if not r.ok)
        retries = sum(r.attempts - 1 for r in results)
        log.info("openai %s: %d requests, %d failed, %d retries", self.model, len(results), failed, retries)
        return list(results)

    async def _one(
        self, client: Any, limit: AdaptiveLimit, i: int, request: ChatRequest,
        on_result: ResultCallback | None, key: str,
    ) -> ChatResult:
        attempt = 0
        while True:
            attempt += 1
            async with limit.slot() as started:
                outcome = await self._attempt(client, request, key)
                if isinstance(outcome, _Failure) and outcome.rate_limited:
                    limit.cut(started)
                elif isinstance(outcome, ChatResult):
                    limit.grow()
            if isinstance(outcome, ChatResult):
                outcome.attempts = attempt
                break
            if not outcome.retryable or attempt > self.max_retries:
                reason = outcome.reason + ("_exhausted" if outcome.reason.startswith("http_") and outcome.retryable else "")
                outcome = ChatResult(None, None, error=reason, attempts=attempt)
                log.warning("openai request %d failed after %d attempt(s): %s", i, attempt, reason)
                break
            delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, outcome.retry_after, self._rng)
            log.debug("openai request %d: %s, retry %d in %.2fs", i, outcome.reason, attempt, delay)
            await asyncio.sleep(delay)
        if on_result is not None:
            on_result(i, outcome)
        return outcome

    async def _attempt(self, client: Any, request: ChatRequest, key: str) -> ChatResult | _Failure:
        import openai

        kwargs = self.sampling_fields(request)
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        try:
            response = await asyncio.wait_for(
                client.chat.completions.create(model=self.model, messages=list(request.messages), **kwargs),
                timeout=self.timeout_s,
            )
        except (asyncio.TimeoutError, openai.APITimeoutError):
            return _Failure("timeout", retryable=True)
        except openai.APIConnectionError:
            return _Failure("connection_error", retryable=True)
        except openai.APIStatusError as exc:
            return _status_failure(exc, key)
        except (json.JSONDecodeError, UnicodeDecodeError, openai.APIResponseValidationError):
            return _Failure("malformed_response", retryable=True)
        except Exception as exc:  # one odd request must not sink the batch; keep the reason instead
            return _Failure(_scrub(f"client_error: {type(exc).__name__}: {exc}", key)[:500], retryable=False)
        return _to_result(response)


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


def _status_failure(exc: Any, key: str) -> _Failure:
    status = int(exc.status_code)
    if status == 429 or status in RETRYABLE_STATUS or status >= 500:
        retry_after = parse_retry_after(exc.response.headers, now=time.time())
        return _Failure(f"http_{status}", retryable=True, retry_after=retry_after, rate_limited=status == 429)
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    message = error.get("message") if isinstance(error, dict) else None
    return _Failure(_scrub(f"http_{status}: {message or exc.message}", key)[:500], retryable=False)


def _to_result(response: Any) -> ChatResult | _Failure:
    try:
        choice = response.choices[0]
        text = choice.message.content
        finish_reason = choice.finish_reason
    except (AttributeError, IndexError, TypeError, KeyError):
        return _Failure("malformed_response", retryable=True)
    usage: dict[str, int] = {}
    raw_usage = getattr(response, "usage", None)
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(raw_usage, name, None)
        if isinstance(value, int):
            usage[name] = value
    return ChatResult(text=text or "", finish_reason=str(finish_reason or "unknown"), usage=usage)


# Public names for the openai-batch backend, which shares the failure mapping, the result conversion
# and the secret scrubbing with this one (other modules never import the underscored names).
Failure = _Failure
scrub = _scrub
to_result = _to_result
