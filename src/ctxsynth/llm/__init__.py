"""LLM backends, found by name in a registry with lazy imports."""

from __future__ import annotations

from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, SamplingParams
from ctxsynth.llm.spec import ModelSpec
from ctxsynth.registry import Registry

BACKENDS = Registry("LLM backend")
BACKENDS.register("openai", "ctxsynth.llm.openai_backend:OpenAIBackend")
BACKENDS.register("openai-batch", "ctxsynth.llm.openai_batch:OpenAIBatchBackend")
BACKENDS.register("transformers", "ctxsynth.llm.hf_backend:TransformersBackend")
BACKENDS.register("vllm", "ctxsynth.llm.vllm_backend:VLLMBackend")
BACKENDS.register("fake", "ctxsynth.llm.fake:FakeBackend")

__all__ = ["BACKENDS", "Backend", "ChatRequest", "ChatResult", "ModelSpec", "SamplingParams"]
