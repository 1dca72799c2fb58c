"""The `fake` backend: a deterministic offline model for docs, demos of the plumbing, and tests.

Its reply is a pure function of (messages, sampling seed): "Context: " followed by a pseudo
document stitched from runs of consecutive words of the last user message, so phrases of the
prompt (a seed's answer, say) tend to reappear in the reply, as they would in a real context.
It honours max_tokens like a real model (one word = one token here): a reply cut at max_tokens
ends with finish reason "length". No torch, no network, microseconds per request.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from typing import Any

from ctxsynth.errors import ConfigError
from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, Message, ResultCallback

_WORD = re.compile(r"\S+")
_FILLER = ("the", "record", "notes", "that", "this", "was", "reported", "in", "a", "later", "account")


class FakeBackend(Backend):
    """Deterministic replies: same messages and seed, same text; another seed, another text."""

    name = "fake"

    def __init__(self, model: str = "fake", words: int = 200, finish_reason: str = "stop",
                 prefix: str = "Context: ") -> None:
        super().__init__(model)
        if words < 0:
            raise ConfigError(f"words must be >= 0, got {words}")
        self.words = words
        self.finish_reason = finish_reason
        self.prefix = prefix

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "words": self.words,
                "finish_reason": self.finish_reason, "prefix": self.prefix}

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        results = []
        for i, request in enumerate(requests):
            try:
                result = self.reply(request)
            except Exception as exc:  # a malformed request fails alone
                result = ChatResult(None, None, error=f"{type(exc).__name__}: {exc}")
            results.append(result)
            if on_result:
                on_result(i, result)
        return results

    def reply(self, request: ChatRequest) -> ChatResult:
        """The answer to one request (pure; no state is kept between calls)."""
        messages = [dict(m) for m in request.messages]
        body = pseudo_document(last_user_text(messages), self.words, _rng(messages, request.params.seed))
        budget = request.params.max_tokens
        finish = self.finish_reason
        if len(body) > budget:
            body, finish = body[:budget], "length"
        prompt_tokens = sum(len(_WORD.findall(m.get("content", ""))) for m in messages)
        return ChatResult(text=self.prefix + " ".join(body), finish_reason=finish,
                          usage={"prompt_tokens": prompt_tokens, "completion_tokens": len(body)})


def last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message.get("content", "")
    raise ValueError("no user message in the request")


def pseudo_document(source: str, words: int, rng: random.Random) -> list[str]:
    """`words` words as sentences, each a run of 4-14 consecutive words of `source`."""
    vocab = _WORD.findall(source) or list(_FILLER)
    ring = vocab * (2 + 14 // len(vocab))  # ring[i] == vocab[i % len(vocab)] for every i a run reaches
    out: list[str] = []
    while len(out) < words:
        length = rng.randint(4, 14)
        start = rng.randrange(len(vocab))
        run = ring[start:start + length]
        run[0] = run[0][:1].upper() + run[0][1:]
        run[-1] = run[-1].rstrip(".,;:!?") + "."
        out.extend(run)
    return out[:words]


def _rng(messages: list[dict[str, str]], seed: int | None) -> random.Random:
    blob = json.dumps([messages, seed], sort_keys=True, ensure_ascii=False)
    return random.Random(hashlib.sha256(blob.encode("utf-8")).hexdigest())
