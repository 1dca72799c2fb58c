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


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (CUDA machines only)")
def test_vllm_backend_generates_in_process_with_per_request_seeds() -> None:
    """The embedded SmolLM2 through vLLM: one result per request, in order, usage counted, a seed
    reproduces its text whatever the batch, and a token limit ends as finish_reason 'length'."""
    from ctxsynth.llm.base import ChatRequest, SamplingParams

    backend = BACKENDS.get("vllm")(model="smollm2-135m-instruct", max_model_len=2048, gpu_memory_utilization=0.3)
    messages = [{"role": "user", "content": f"Write two sentences about harbour number {i}."} for i in range(3)]
    requests = [ChatRequest([m], SamplingParams(temperature=0.8, max_tokens=64, seed=i), id=str(i))
                for i, m in enumerate(messages)]
    seen: list[int] = []
    results = backend.generate(requests, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1, 2] and all(r.ok for r in results)
    assert all(r.usage["prompt_tokens"] > 0 and 0 < r.usage["completion_tokens"] <= 64 for r in results)
    alone = backend.generate([requests[1]])[0]
    assert alone.text == results[1].text  # per-request seed: the batch does not change the sample
    short = backend.generate([ChatRequest([messages[0]], SamplingParams(temperature=0.0, max_tokens=4), id="s")])[0]
    assert short.finish_reason == "length" and short.usage["completion_tokens"] == 4
    backend.close()
