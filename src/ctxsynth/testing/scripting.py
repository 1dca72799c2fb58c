"""What a test scripts on `OpenAIServer`: replies, faults, and the records of what arrived.

Kept apart from the HTTP plumbing so responders and fault rules can be written (and read) without
it. A request is identified by `request_fingerprint`: its messages plus sampling parameters, so
"how many times was this exact request sent?" is one dictionary lookup.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SAMPLING_FIELDS = ("model", "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed")


@dataclass(frozen=True)
class Reply:
    """What a responder returns when plain text is not enough."""

    text: str
    finish_reason: str = "stop"
    usage: dict[str, int] | None = None


@dataclass(frozen=True)
class Fault:
    """One injected failure; build it with the class methods."""

    kind: str  # "status" | "stall" | "malformed" | "truncated" | "drop"
    status: int = 500
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    message: str = "injected fault"

    @classmethod
    def rate_limit(cls, retry_after: str | float | None = None, retry_after_ms: float | None = None) -> Fault:
        headers = []
        if retry_after is not None:
            headers.append(("Retry-After", str(retry_after)))
        if retry_after_ms is not None:
            headers.append(("retry-after-ms", str(retry_after_ms)))
        return cls("status", 429, tuple(headers), message="rate limited")

    @classmethod
    def http_error(cls, status: int = 500, message: str = "injected server error") -> Fault:
        return cls("status", status, message=message)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Say nothing for `seconds` (longer than the client's timeout), then answer normally."""
        return cls("stall", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """Status 200 with a JSON body cut in the middle."""
        return cls("malformed")

    @classmethod
    def truncated(cls) -> Fault:
        """A valid reply whose text is cut in half, with finish_reason "length"."""
        return cls("truncated")

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without sending any response."""
        return cls("drop")


@dataclass(frozen=True)
class Hit:
    """A request as a fault rule sees it."""

    key: str  # request_fingerprint(body)
    n: int  # how many times this key has arrived, this hit included (1 = first attempt)
    total: int  # global arrival index, 1-based
    body: dict[str, Any]


@dataclass(frozen=True)
class HitRecord:
    key: str
    n: int
    total: int
    in_flight: int  # requests in flight when this one arrived, itself included
    outcome: str  # "ok", "truncated", "stall", "abandoned" (a stall the client hung up on), "malformed", "drop", "http_<status>", "responder_error"
    authorization: str  # the Authorization header as received
    headers: tuple[tuple[str, str], ...] = ()  # every request header as received, in order
    path: str = ""  # the request target, query included


Responder = Callable[[dict[str, Any]], "str | Reply"]
FaultRule = Callable[[Hit], "Fault | None"]


FAULT_KINDS = ("rate_limit", "server_error", "stall", "malformed", "truncated")


def random_faults(rate: float, seed: int = 0, *, kinds: tuple[str, ...] = FAULT_KINDS, stall_s: float = 30.0,
                  retry_after: float | None = 1.0) -> FaultRule:
    """A fault rule giving each attempt a fault with probability `rate`, the kinds in equal shares.
    Decided by hashing (seed, request fingerprint, attempt number), so the same request gets the
    same faults in any arrival order, any client, any run: two clients compared on one seed meet
    exactly the same faults."""
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown or not 0.0 <= rate <= 1.0:
        raise ValueError(f"need 0 <= rate <= 1 and kinds from {FAULT_KINDS}, not {sorted(unknown)}")
    faults = {
        "rate_limit": Fault.rate_limit(retry_after=retry_after), "server_error": Fault.http_error(500),
        "stall": Fault.stall(stall_s), "malformed": Fault.malformed(), "truncated": Fault.truncated(),
    }

    def rule(hit: Hit) -> Fault | None:
        digest = hashlib.sha256(f"{seed}|{hit.key}|{hit.n}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw >= rate:
            return None
        return faults[kinds[int(draw / rate * len(kinds)) % len(kinds)]]

    return rule


def rate_limit_bursts(every: int, length: int, retry_after: float | None = 1.0) -> FaultRule:
    """429 for `length` consecutive arrivals out of every `every` (a provider's quota window
    refilling): arrivals are counted globally, so a burst hits whatever is in flight then."""
    fault = Fault.rate_limit(retry_after=retry_after)
    return lambda hit: fault if (hit.total - 1) % every < length else None


def request_fingerprint(body: dict[str, Any]) -> str:
    """Stable key of a request: its messages plus sampling parameters."""
    payload = {"messages": body.get("messages"), **{k: body.get(k) for k in SAMPLING_FIELDS}}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def echo_responder(body: dict[str, Any]) -> Reply:
    """Default responder: echoes the last user message."""
    users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    return Reply(f"echo: {users[-1] if users else ''}")


def completion_body(model: str, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    """The chat.completion JSON the server sends for `reply` to the request `body`."""
    prompt_words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    usage = reply.usage or {
        "prompt_tokens": prompt_words,
        "completion_tokens": len(reply.text.split()),
        "total_tokens": prompt_words + len(reply.text.split()),
    }
    return {
        "id": f"chatcmpl-{request_fingerprint(body)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": reply.finish_reason}],
        "usage": usage,
    }
