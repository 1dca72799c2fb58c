"""The vllm backend is found by name and, where vLLM is not installed (CI has no GPU), says how to
get it or to serve the model behind the openai backend instead."""

from __future__ import annotations

import importlib.util

import pytest

from ctxsynth.llm import BACKENDS


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_missing_vllm_gives_an_actionable_error() -> None:
    backend_cls = BACKENDS.get("vllm")
    with pytest.raises(ImportError, match="pip install vllm.*llm.backend=openai"):
        backend_cls(model="smollm2-135m-instruct")
