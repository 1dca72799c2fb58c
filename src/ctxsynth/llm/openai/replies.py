"""The `openai` backend's replies: a decoded chat.completion (or the SDK's model) -> ChatResult, and
an SDK error -> a `Failure` (reason, whether to retry, Retry-After, kind). No I/O here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ctxsynth.llm.base import ChatRequest, ChatResult
from ctxsynth.llm.concurrency import parse_retry_after

RETRYABLE_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class Failure:
    reason: str  # final error text if no retry is left
    retryable: bool
    retry_after: float | None = None
    rate_limited: bool = False
    kind: str = "outage"  # ChatResult.failure if no retry is left


def succeeded(outcome: ChatResult | Failure) -> bool:
    return isinstance(outcome, ChatResult) and outcome.ok


def dropped(exc: BaseException) -> bool:
    """Whether a timeout error from the SDK was really a dropped connection: the aiohttp transport maps
    every aiohttp connection error (a server that closed the connection included) to a timeout."""
    cause = exc.__cause__
    while cause is not None:
        if type(cause).__module__.startswith("aiohttp") and not isinstance(cause, TimeoutError):
            return True
        cause = cause.__cause__
    return False


def scrub(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


def status_failure(exc: Any, key: str) -> Failure:
    status = int(exc.status_code)
    if status in RETRYABLE_STATUS or status >= 500:
        retry_after = parse_retry_after(exc.response.headers, now=time.time())
        return Failure(f"http_{status}", retryable=True, retry_after=retry_after, rate_limited=status == 429,
                        kind="rate_limit" if status == 429 else "outage")
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    message = error.get("message") if isinstance(error, dict) else None
    kind = {401: "auth", 403: "auth", 404: "not_found"}.get(status, "rejected")
    return Failure(scrub(f"http_{status}: {message or exc.message}", key)[:500], retryable=False, kind=kind)


def error_failure(exc: Exception, key: str) -> Failure:
    """An attempt's exception -> its Failure: a timeout or a connection error (retried), an HTTP status
    (status_failure), an undecodable reply (retried), else a client error kept with its reason."""
    import openai

    if isinstance(exc, TimeoutError):  # asyncio's deadline
        return Failure("timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError included
        timed_out = isinstance(exc, openai.APITimeoutError) and not dropped(exc)
        return Failure("timeout" if timed_out else "connection_error", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return status_failure(exc, key=key)
    if isinstance(exc, (ValueError, openai.APIResponseValidationError)):  # JSONDecodeError, UnicodeDecodeError
        return Failure("malformed_response", retryable=True)
    return Failure(scrub(f"client_error: {type(exc).__name__}: {exc}", key)[:500], retryable=False, kind="error")


def cut_short(result: ChatResult, request: ChatRequest) -> bool:
    """A truncated reply that stopped before its budget: the cut was not the budget's."""
    used = result.usage.get("completion_tokens")
    return result.finish_reason == "length" and used is not None and used < request.params.max_tokens


def result_from_json(payload: Any) -> ChatResult | Failure:
    """A chat.completion body (decoded JSON) -> ChatResult; a body without a choice is malformed."""
    try:
        choice = payload["choices"][0]
        text = choice["message"].get("content")
        finish_reason = choice.get("finish_reason")
        raw_usage = payload.get("usage") or {}
    except (AttributeError, IndexError, TypeError, KeyError):
        return Failure("malformed_response", retryable=True)
    usage = {name: value for name in ("prompt_tokens", "completion_tokens", "total_tokens")
             if isinstance(value := raw_usage.get(name) if isinstance(raw_usage, dict) else None, int)}
    return ChatResult(text=text or "", finish_reason=str(finish_reason or "unknown"), usage=usage)


def to_result(response: Any) -> ChatResult | Failure:
    """The same from the SDK's ChatCompletion model (the Batch API's replies)."""
    try:
        choice = response.choices[0]
        text = choice.message.content
        finish_reason = choice.finish_reason
    except (AttributeError, IndexError, TypeError, KeyError):
        return Failure("malformed_response", retryable=True)
    usage: dict[str, int] = {}
    raw_usage = getattr(response, "usage", None)
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(raw_usage, name, None)
        if isinstance(value, int):
            usage[name] = value
    return ChatResult(text=text or "", finish_reason=str(finish_reason or "unknown"), usage=usage)
