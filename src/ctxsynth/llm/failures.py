"""Why a request failed: infrastructure (nothing about this request; retry it later) or content.

Infrastructure failures (endpoint unreachable, timeouts, 5xx, a refused key, an unknown model,
rate limits that outlasted every retry) are never final: the stage that saw one stops without
marking its shard complete, so rerunning the same command sends exactly those requests again. A
content failure (a 400 for this prompt, a reply that fails its checks) is the request's own answer.

`failure_kind` reads the kind a backend declares on `ChatResult.failure` (the openai backends
declare every one); a generic "error" (local backends, older callers) is classified from the error
text (`http_<status>...`, `connection_error`, `timeout`, ...).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from ctxsynth.errors import BackendUnavailable
from ctxsynth.llm.base import INFRASTRUCTURE_FAILURES, Backend, ChatResult

INFRASTRUCTURE = tuple(sorted(INFRASTRUCTURE_FAILURES))
_STATUS = re.compile(r"^http_(\d{3})")
_OUTAGE_PREFIXES = ("connection_error", "timeout", "malformed_response", "backend returned no result", "batch:")


def failure_kind(result: ChatResult) -> str | None:
    """None for a success; "auth" | "not_found" | "rate_limit" | "outage" (infrastructure) or "content"."""
    if result.ok:
        return None
    if result.failure in INFRASTRUCTURE_FAILURES:
        return result.failure
    if result.failure in ("truncated", "rejected"):
        return "content"
    return classify_error(result.error or "")


def classify_error(error: str) -> str:
    match = _STATUS.match(error)
    if match:
        status = int(match.group(1))
        if status in (401, 403):
            return "auth"
        if status == 404:
            return "not_found"
        if status == 429:
            return "rate_limit"
        if status in (408, 409) or status >= 500:
            return "outage"
        return "content"
    return "outage" if error.startswith(_OUTAGE_PREFIXES) else "content"


def status_of(error: str) -> int | None:
    match = _STATUS.match(error)
    return int(match.group(1)) if match else None


def is_infrastructure(result: ChatResult) -> bool:
    return failure_kind(result) in INFRASTRUCTURE


def unanswered_error(failed: list[ChatResult], backend: Backend, unit: str = "the shard") -> BackendUnavailable:
    """The error that stops a stage unmarked: its infrastructure failures are retried by the rerun
    (answered requests come back from the request cache)."""
    kinds = Counter(failure_kind(r) or "outage" for r in failed)
    cause = kinds.most_common(1)[0][0]
    errors = Counter((r.error or "").split(":")[0] for r in failed)
    shown = ", ".join(f"{n} x {e}" for e, n in errors.most_common(3))
    return BackendUnavailable(
        f"{len(failed)} request(s) to {backend.name} {backend.model} failed for infrastructure reasons ({shown}); "
        f"{unit} was not marked complete: rerun the same command to send exactly those again", cause=cause)


def raise_if_unanswered(results: Iterable[ChatResult], backend: Backend, unit: str) -> None:
    """Stop when any result is an infrastructure failure: a filter must not keep (or drop) a seed
    because its endpoint was down."""
    failed = [r for r in results if is_infrastructure(r)]
    if failed:
        raise unanswered_error(failed, backend, unit)
