"""The LLM backend interface: chat messages in, text + usage + finish reason out.

A backend implements one method, `generate`, over a batch of requests. It never raises for a
single failed request: the failure comes back as a `ChatResult` with `error` set, so a batch
always ends with one result per request (nothing lost, nothing duplicated).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

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

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


ResultCallback = Callable[[int, ChatResult], None]


class Backend(ABC):
    """Subclasses set `name`, take their options as keyword arguments and implement `generate`."""

    name: ClassVar[str] = ""
    # The API key: the environment variable that holds it (None: no key needed) and the option that
    # names another variable. ModelSpec's generic key check reads these through `key_env`.
    key_env_var: ClassVar[str | None] = None
    key_env_option: ClassVar[str | None] = None

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
