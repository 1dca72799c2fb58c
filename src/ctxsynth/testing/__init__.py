"""Test doubles shipped inside the package, so tests, docs and benchmarks share them.

`OpenAIServer` is a real HTTP server speaking the OpenAI chat-completions protocol on 127.0.0.1,
with scripted replies, fault injection and hit counters. It uses only the standard library.
`OpenAIServer` is loaded on first use; `python -m ctxsynth.testing.serve` runs it as a process of its own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ctxsynth.testing.scripting import Fault, Hit, HitRecord, Reply, echo_responder, request_fingerprint

if TYPE_CHECKING:
    from ctxsynth.testing.openai_server import OpenAIServer

__all__ = ["Fault", "Hit", "HitRecord", "OpenAIServer", "Reply", "echo_responder", "request_fingerprint"]


def __getattr__(name: str) -> Any:
    if name == "OpenAIServer":
        return importlib.import_module("ctxsynth.testing.openai_server").OpenAIServer
    raise AttributeError(f"module 'ctxsynth.testing' has no attribute {name!r}")
