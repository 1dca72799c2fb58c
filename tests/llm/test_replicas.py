"""Data-parallel generation (`devices`): replicas in worker processes give one replica's texts.

Runs the real embedded SmolLM2-135M-Instruct on CPU: two worker processes against the model in
this process, on the same requests (sampled with seeds, and greedy), with batches of two so that
the five requests make three batches spread over both replicas.
"""

from __future__ import annotations

import pytest
import torch

from ctxsynth.errors import ConfigError
from ctxsynth.llm.base import ChatRequest, SamplingParams
from ctxsynth.llm.hf_backend import TransformersBackend
from ctxsynth.llm.replicas import expand_devices


def ask(text: str, seed: int, temperature: float = 0.9) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}],
                       SamplingParams(temperature=temperature, top_p=0.95, max_tokens=8, seed=seed))


REQUESTS = [ask("Name a colour.", 1), ask("Write one sentence about a lighthouse keeper.", 2),
            ask("What is 2+2?", 3, temperature=0.0), ask("List three facts about Jupiter and its moons.", 4),
            ask("Hi", 5)]


@pytest.mark.slow  # three model loads, two in worker processes: 212 s on the shared, loaded 2-core box
def test_two_replica_processes_return_the_texts_of_one_in_request_order() -> None:
    one = TransformersBackend(device="cpu", batch_size=2).generate(REQUESTS)
    pooled = TransformersBackend(device="cpu", batch_size=2, devices=2)
    seen: list[int] = []
    try:
        two = pooled.generate(REQUESTS, on_result=lambda i, r: seen.append(i))
        assert pooled._pool is not None and pooled._pool.alive and len(pooled._pool.devices) == 2
    finally:
        pooled.close()
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert all(r.answered and r.text for r in one)
    assert [r.text for r in two] == [r.text for r in one]
    assert [r.usage for r in two] == [r.usage for r in one]
    assert [r.finish_reason for r in two] == [r.finish_reason for r in one]
    assert pooled._pool is None  # closed: no worker left behind


def test_device_lists() -> None:
    assert expand_devices(3, "cpu") == ["cpu", "cpu", "cpu"]
    assert expand_devices(["cuda:1", "cuda:0"], "auto") == ["cuda:1", "cuda:0"]
    assert expand_devices("2", "cpu") == ["cpu", "cpu"]
    with pytest.raises(ConfigError, match=">= 1"):
        expand_devices(0, "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            expand_devices("all", "auto")
        assert expand_devices(2, "auto") == ["cpu", "cpu"]
