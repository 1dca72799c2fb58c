"""The backend registry: every chat backend by name, imported when first used (optional
dependencies load only then). `ctxsynth ls` lists the names."""

from __future__ import annotations

from ctxsynth.registry import Registry

BACKENDS = Registry("LLM backend")
BACKENDS.register("openai", "ctxsynth.llm.openai.backend:OpenAIBackend")
BACKENDS.register("openai-batch", "ctxsynth.llm.openai.batch:OpenAIBatchBackend")
BACKENDS.register("transformers", "ctxsynth.llm.hf_backend:TransformersBackend")
BACKENDS.register("vllm", "ctxsynth.llm.vllm_backend:VLLMBackend")
BACKENDS.register("fake", "ctxsynth.llm.fake:FakeBackend")
