"""The LLM backend interface: chat messages in, text + usage + finish reason out.

A backend implements one method, `generate`, over a batch of requests. It never raises for a
single failed request: the failure comes back as a `ChatResult` with `error` set, so a batch
always ends with one result per request (nothing lost, nothing duplicated).

`stream` is the bounded-memory form: requests are taken lazily from an iterable or a
`RequestQueue` (to which `on_result` may push follow-up requests, e.g. a regeneration), and each
result goes only to the callback, so nothing per request is kept after its callback returned.
The default `stream` sends what is queued in rounds through `generate` (right for batch backends);
the `openai` backend streams natively.

A result is `ok` only when it is a complete answer: a reply cut at the token budget
(finish_reason "length") is `answered` but not `ok`, with `failure` "truncated". `failure` names the
kind of every other failure too, and `infrastructure` tells an endpoint problem (auth, unknown model,
outage, rate limit) from a problem with the request or its content.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

# ChatResult.failure kinds. The first four are the endpoint's problem (retrying the request later,
# elsewhere or with another key may work); the others belong to the request or its reply.
INFRASTRUCTURE_FAILURES = frozenset({
    "auth",  # 401/403: the key is refused
    "not_found",  # 404: unknown model or route
    "outage",  # connection refused/dropped, timeouts, 5xx or undecodable replies after all retries
    "rate_limit",  # 429 after all retries
})
CONTENT_FAILURES = frozenset({
    "truncated",  # answered, but cut at the token budget (finish_reason "length")
    "rejected",  # another 4xx: the request itself was refused (too long, bad field, content policy)
    "error",  # anything else (a client-side exception, a local backend's own error)
})

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}
# A request of one message with this role is plain text for the model: no chat template, the
# tokenizer's special tokens (BOS) added. Only backends with `raw_prompts = True` accept it.
RAW_ROLE = "raw"


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 4096
    seed: int | None = None  # per-request sampling seed; part of the cache key

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...] | list[Message]
    params: SamplingParams = field(default_factory=SamplingParams)
    id: str = ""  # caller's id (custom_id); not part of the cache key


@dataclass
class ChatResult:
    text: str | None
    finish_reason: str | None  # "stop", "length", ... ; None when the request failed
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens
    error: str | None = None  # why the request failed after all retries
    cached: bool = False
    attempts: int = 1  # HTTP attempts (retries included)
    hedges: int = 0  # second attempts sent beside slow ones (ctxsynth.llm.hedging): billed too
    failure: str | None = None  # None when ok, else one of INFRASTRUCTURE_FAILURES | CONTENT_FAILURES

    def __post_init__(self) -> None:
        if self.failure is None and not self.ok:
            self.failure = "truncated" if self.answered else "error"

    @property
    def answered(self) -> bool:
        """The endpoint replied with text (complete or cut at the token budget)."""
        return self.error is None and self.text is not None

    @property
    def ok(self) -> bool:
        """A complete answer: replied, and not cut at the token budget."""
        return self.answered and self.finish_reason != "length"

    @property
    def infrastructure(self) -> bool:
        """The failure is the endpoint's (auth, unknown model, outage, rate limit), not the request's."""
        return self.failure in INFRASTRUCTURE_FAILURES


ResultCallback = Callable[[int, ChatResult], None]


class RequestQueue:
    """Requests for `Backend.stream`: taken lazily from `requests`, plus any `push`ed while results
    arrive (pushed ones go first). Each request gets the index of the order it was taken in."""

    def __init__(self, requests: Iterable[ChatRequest] = ()) -> None:
        self._source = iter(requests)
        self._pushed: deque[ChatRequest] = deque()
        self.taken = 0

    def push(self, request: ChatRequest) -> None:
        self._pushed.append(request)

    def take(self) -> tuple[int, ChatRequest] | None:
        """The next (index, request), or None when nothing is queued right now."""
        if self._pushed:
            request = self._pushed.popleft()
        else:
            nxt = next(self._source, None)
            if nxt is None:
                return None
            request = nxt
        index = self.taken
        self.taken += 1
        return index, request


def as_queue(requests: Iterable[ChatRequest] | RequestQueue) -> RequestQueue:
    return requests if isinstance(requests, RequestQueue) else RequestQueue(requests)


class Backend(ABC):
    """Subclasses set `name`, take their options as keyword arguments and implement `generate`."""

    name: ClassVar[str] = ""
    # The API key: the environment variable that holds it (None: no key needed) and the option that
    # names another variable. ModelSpec's generic key check reads these through `key_env`.
    key_env_var: ClassVar[str | None] = None
    key_env_option: ClassVar[str | None] = None
    # Capabilities, declared by each backend; the defaults are those of a backend that answers chat
    # messages on this machine.
    prefill: ClassVar[bool] = False  # continues a final assistant message instead of answering it
    raw_prompts: ClassVar[bool] = False  # accepts one RAW_ROLE message: plain text without the chat template
    hosted: ClassVar[bool] = False  # a hosted API behind HTTP: `ctxsynth estimate` counts tokens with tiktoken
    batch: ClassVar[bool] = False  # answers arrive asynchronously (a Batch API), within its completion window
    # takes the prompt ids the eval runner measured (ctxsynth.tokenize.shared_encodings) instead of tokenizing again
    reuses_prompt_ids: ClassVar[bool] = False

    @classmethod
    def concurrency(cls, options: Mapping[str, Any]) -> int | None:
        """Requests in flight at most with these options: the `max_concurrency` option (else the
        constructor's default) of a backend that takes one; None for one that batches by itself."""
        params = inspect.signature(cls.__init__).parameters
        if "max_concurrency" not in params:
            return None
        return int(options.get("max_concurrency", params["max_concurrency"].default))

    @classmethod
    def probe(cls, model: str, options: Mapping[str, Any], where: str, endpoint: str) -> str | None:
        """Preflight's one cheap check of the endpoint before paid work: raise BackendUnavailable when
        it cannot answer, return a warning (or None). The default, for a backend without an
        endpoint, checks nothing."""
        return None

    @classmethod
    def key_env(cls, options: Mapping[str, Any]) -> str | None:
        """The environment variable that must hold an API key for a spec with these options."""
        if cls.key_env_var is None:
            return None
        return str(options.get(cls.key_env_option, cls.key_env_var)) if cls.key_env_option else cls.key_env_var

    def __init__(self, model: str) -> None:
        self.model = model

    @abstractmethod
    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        """Answer every request, in order. `on_result(i, result)` is called as soon as request i
        is finished (the cache uses it to persist results one by one)."""

    def stream(self, requests: Iterable[ChatRequest] | RequestQueue, on_result: ResultCallback) -> None:
        """Answer requests as they are queued, each result to `on_result(index, result)` only.
        This default sends everything queued at once through `generate`, round after round, until
        the callbacks push no more."""
        queue = as_queue(requests)
        while True:
            batch = []
            while (item := queue.take()) is not None:
                batch.append(item)
            if not batch:
                return
            delivered: set[int] = set()

            def deliver(j: int, result: ChatResult, batch: list = batch, delivered: set = delivered) -> None:
                if j not in delivered:
                    delivered.add(j)
                    on_result(batch[j][0], result)

            for j, result in enumerate(self.generate([r for _, r in batch], on_result=deliver)):
                deliver(j, result)

    def identity(self) -> dict[str, Any]:
        """What distinguishes this backend's outputs in the cache key (never secrets)."""
        return {"backend": self.name, "model": self.model}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (HTTP clients, GPU memory)."""


def request_key(identity: dict[str, Any], request: ChatRequest) -> str:
    """Content address of a request: hash(backend, model, sampling params, messages)."""
    payload = {
        "identity": identity,
        "params": request.params.to_dict(),
        "messages": [dict(m) for m in request.messages],
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
