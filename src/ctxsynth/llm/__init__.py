"""LLM backends, found by name in a registry with lazy imports (ctxsynth.llm.backends)."""

from __future__ import annotations

from ctxsynth.llm.backends import BACKENDS
from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, SamplingParams
from ctxsynth.llm.spec import ModelSpec

__all__ = ["BACKENDS", "Backend", "ChatRequest", "ChatResult", "ModelSpec", "SamplingParams"]
