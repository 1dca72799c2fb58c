"""The `transformers` backend on the real embedded model (SmolLM2-135M-Instruct, CPU).

Protects: request-order results and callbacks, per-request seeded sampling that does not depend on
what else is in the batch, greedy determinism, finish reasons and usage counts, failures that stay
with their own requests, and a cache identity that does not depend on the machine's paths.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from ctxsynth.errors import ConfigError
from ctxsynth.llm import BACKENDS
from ctxsynth.llm.base import ChatRequest, ChatResult, SamplingParams
from ctxsynth.llm.hf_backend import RowGumbelSampler, TransformersBackend
from ctxsynth.models import embedded_model_dir
from ctxsynth.tokenize import load_tokenizer


def ask(text: str, seed: int | None = 0, temperature: float = 1.0, max_tokens: int = 12) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}],
                       SamplingParams(temperature=temperature, top_p=0.95, max_tokens=max_tokens, seed=seed))


@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    return TransformersBackend("smollm2-135m-instruct", device="cpu", batch_size=4)


def test_two_requests_come_back_in_order_with_callbacks_and_usage(backend: TransformersBackend) -> None:
    long_first = ask("Describe in detail how a steam engine turns heat into motion, step by step.", max_tokens=8)
    short = ask("Name a colour.", max_tokens=8)
    seen: list[int] = []
    results = backend.generate([long_first, short], on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1]
    assert all(r.answered and r.text for r in results)
    prompt_lens = [len(backend.encode_prompt(r)) for r in (long_first, short)]
    assert [r.usage["prompt_tokens"] for r in results] == prompt_lens
    assert prompt_lens[0] > prompt_lens[1]  # sorted by length internally, yet returned in request order
    for r in results:
        assert 1 <= r.usage["completion_tokens"] <= 8


def test_seeded_sample_is_the_same_alone_and_inside_a_padded_batch(backend: TransformersBackend) -> None:
    lighthouse = "Write one sentence about a lighthouse keeper."
    jupiter = "List four facts about the planet Jupiter and its many moons, briefly."
    alone = backend.generate([ask(lighthouse, seed=42)])[0]
    batched = backend.generate([ask("Hi", seed=1), ask(lighthouse, seed=42), ask(jupiter, seed=2),
                                ask(lighthouse, seed=43)])
    assert alone.answered and batched[1].text == alone.text
    assert batched[1].usage == alone.usage
    assert batched[3].text != alone.text  # another seed, another sample


def test_greedy_ignores_the_seed_and_repeats_itself(backend: TransformersBackend) -> None:
    prompt = "What is the capital of France?"
    runs = backend.generate([ask(prompt, seed=s, temperature=0.0, max_tokens=10) for s in (1, 99, None)])
    assert runs[0].text == runs[1].text == runs[2].text
    assert "Paris" in (runs[0].text or "")


def test_finish_reason_length_and_stop_with_token_counts(backend: TransformersBackend) -> None:
    cut, done = backend.generate([
        ask("Write a long essay about the history of Rome.", temperature=0.0, max_tokens=4),
        ask("What is the capital of France?", temperature=0.0, max_tokens=12),
    ])
    assert cut.finish_reason == "length" and cut.usage["completion_tokens"] == 4
    assert done.finish_reason == "stop"
    text_tokens = len(load_tokenizer("smollm2").encode(done.text or ""))
    assert done.usage["completion_tokens"] == text_tokens + 1  # the end-of-turn token counts


class FaultyBackend(TransformersBackend):
    """Fault injection: any batch holding a request whose text contains BOOM raises, like an OOM would."""

    def _generate_batch(self, requests, prompts) -> list[ChatResult]:  # type: ignore[no-untyped-def]
        if any("BOOM" in r.messages[-1]["content"] for r in requests):
            raise RuntimeError("injected failure")
        return super()._generate_batch(requests, prompts)


def test_a_failing_batch_only_fails_its_bad_request(backend: TransformersBackend) -> None:
    faulty = FaultyBackend(device="cpu", batch_size=3)
    faulty._model, faulty._tokenizer = backend._model, backend._tokenizer  # share the loaded weights
    good = [ask("Say hello.", max_tokens=4, seed=5), ask("Say goodbye now.", max_tokens=4, seed=6)]
    results = faulty.generate([good[0], ask("BOOM please", max_tokens=4), good[1]])
    assert [r.answered for r in results] == [True, False, True]
    assert "injected failure" in (results[1].error or "")
    assert [r.text for r in results[::2]] == [r.text for r in backend.generate(good)]


def test_a_prompt_over_the_input_limit_fails_alone(backend: TransformersBackend) -> None:
    limited = TransformersBackend(device="cpu", max_input_tokens=40)
    limited._model, limited._tokenizer = backend._model, backend._tokenizer
    results = limited.generate([ask("Hi", max_tokens=2), ask("word " * 60, max_tokens=2)])
    assert results[0].answered
    assert not results[1].answered and "more than the limit of 40" in (results[1].error or "")


def test_identity_is_portable_and_tracks_the_config(tmp_path: Path) -> None:
    source = embedded_model_dir()
    copy = tmp_path / "elsewhere" / source.name
    copy.mkdir(parents=True)
    for f in source.iterdir():
        (copy / f.name).symlink_to(f)
    original = TransformersBackend(device="cpu").identity()
    assert TransformersBackend(str(copy), device="cpu").identity() == original
    assert str(tmp_path) not in str(original) and str(source.parent) not in str(original)
    (copy / "config.json").unlink()
    shutil.copy(source / "config.json", copy / "config.json")
    with (copy / "config.json").open("a") as f:
        f.write("\n")
    assert TransformersBackend(str(copy), device="cpu").identity()["config_sha256"] != original["config_sha256"]


def test_registry_and_a_missing_folder_error() -> None:
    assert BACKENDS.get("transformers") is TransformersBackend
    with pytest.raises(FileNotFoundError, match="hub downloads are not attempted"):
        TransformersBackend("/no/such/model")


def test_gumbel_max_sampling_matches_the_softmax() -> None:
    """Over many seeds, the argmax of noisy logits picks each token with its softmax probability."""
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    counts = torch.zeros(4)
    for seed in range(4000):
        counts[int(RowGumbelSampler([seed], [1.0], [1.0], 0)(torch.zeros(1, 0), logits).argmax())] += 1
    assert torch.allclose(counts / 4000, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.03)


def test_sampler_rows_are_independent_and_top_p_and_greedy_rows_hold() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 3))
    both = RowGumbelSampler([7, 8, 9], [1.0, 1.0, 0.0], [1.0, 0.6, 1.0], 0)(torch.zeros(3, 5), logits)
    single = RowGumbelSampler([7], [1.0], [1.0], 0)(torch.zeros(1, 5), logits[:1])
    assert torch.equal(both[0], single[0])
    assert torch.isinf(both[1, 2:]).all() and torch.isfinite(both[1, :2]).all()  # 0.5 + 0.3 reach 0.6
    assert torch.equal(both[2], logits[2])


class SmallMemoryBackend(TransformersBackend):
    """Fault injection: a batch of more than `fits` rows raises torch.OutOfMemoryError, as CUDA does."""

    fits = 2
    seen: list[int]

    def _generate_batch(self, requests, prompts) -> list[ChatResult]:  # type: ignore[no-untyped-def]
        self.seen.append(len(requests))
        if len(requests) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return super()._generate_batch(requests, prompts)


def test_out_of_memory_halves_the_batch_and_keeps_every_result(backend: TransformersBackend) -> None:
    """An OOM batch is split in halves until it fits; the batch size stays lowered for later batches
    (no OOM on every batch), and the texts equal an unconstrained run's (per-request seeds)."""
    small = SmallMemoryBackend(device="cpu", batch_size=5)
    small._model, small._tokenizer, small.seen = backend._model, backend._tokenizer, []
    asks = [ask(f"Count to {n}.", max_tokens=4, seed=n) for n in range(7)]
    results = small.generate(asks)
    assert all(r.answered for r in results)
    assert [r.text for r in results] == [r.text for r in backend.generate(asks)]
    assert small.batch_size == 2
    assert small.seen == [5, 3, 2, 1, 2, 2]  # 5 -> 3 -> 2 + 1, then 2, 2 with the lowered size


def test_out_of_memory_with_one_row_fails_that_request_alone(backend: TransformersBackend) -> None:
    small = SmallMemoryBackend(device="cpu", batch_size=2)
    small._model, small._tokenizer, small.seen, small.fits = backend._model, backend._tokenizer, [], 0
    results = small.generate([ask("Hi", max_tokens=2)])
    assert not results[0].answered and "out of memory with batch 1" in (results[0].error or "")


def test_hashed_noise_is_step_seed_then_a_per_token_splitmix64() -> None:
    """The sampler's noise, computed on whole tensors, equals the per-(row, step, token) hash in plain
    Python integers: the row key is step_seed(seed, step), token j takes the top 24 bits of
    mix64(key * GOLDEN + j + 1). Seeds at the edges of 64 bits included (int64 wrap-around)."""
    from ctxsynth.llm.hf_decoding import (
        _GOLDEN,
        _MASK63,
        _MASK64,
        _mix64,
        _signed,
        hashed_uniform,
        step_seed,
    )

    seeds = [0, 1, 2**62 + 5, 2**63, 2**64 - 1, 123456789012345]
    for step in (0, 1, 299):
        bases = torch.tensor([_signed((s * _GOLDEN + 1) & _MASK64) for s in seeds])
        assert (_mix64(bases + step) & _MASK63).tolist() == [step_seed(s, step) for s in seeds]
    keys = [step_seed(s, 3) for s in seeds]
    got = hashed_uniform(torch.tensor(keys), 300)
    want = torch.tensor([[hashed_uniform_reference(k, j) for j in range(300)] for k in keys], dtype=torch.float64)
    assert torch.equal(got, want)
    # one value worked by hand from the definition: key 0, token 0 -> mix64(1)
    z = 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    z ^= z >> 31
    assert hashed_uniform(torch.tensor([0]), 1).item() == ((z >> 40) + 0.5) / 2**24
    assert 0.0 < float(got.min()) and float(got.max()) < 1.0


def hashed_uniform_reference(key: int, token: int) -> float:
    """`hashed_uniform` for one (key, token) in plain Python integers (for tests)."""
    z = (key * 0x9E3779B97F4A7C15 + token + 1) & (2**64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    z ^= z >> 31
    return ((z >> 40) + 0.5) * 2.0**-24


def test_static_cache_pads_the_batch_and_gives_the_default_paths_texts_on_cpu(backend: TransformersBackend) -> None:
    """static_cache (CUDA graphs on GPU) on CPU: a static KV cache, batches padded to batch_size with
    one-token dummy rows that never reach the caller. On CPU the texts equal the default path's."""
    requests = [ask("Name a colour.", seed=7, max_tokens=8),
                ask("Write one sentence about a lighthouse keeper.", seed=8, max_tokens=8),
                ask("What is 2+2?", temperature=0.0, max_tokens=6)]
    static = TransformersBackend("smollm2-135m-instruct", device="cpu", batch_size=4, static_cache=True)
    seen: list[int] = []
    got = static.generate(requests, on_result=lambda i, r: seen.append(i))
    want = backend.generate(requests)
    assert sorted(seen) == [0, 1, 2]  # the dummy fourth row is not reported
    assert [(r.text, r.usage, r.finish_reason) for r in got] == [(r.text, r.usage, r.finish_reason) for r in want]
    assert all(r.answered and r.text for r in got)
    assert static._model.generation_config.cache_implementation is None  # set per call, not on the model
    assert static._model._previous_max_cache_length == 256  # a static cache, its length rounded up to 256


def test_static_cache_is_part_of_the_identity_and_must_be_a_bool() -> None:
    plain = TransformersBackend(device="cpu").identity()
    assert "static_cache" not in plain  # cache keys of existing runs stay
    assert TransformersBackend(device="cpu", static_cache=True).identity() == {**plain, "static_cache": True}
    with pytest.raises(ConfigError, match="static_cache must be true or false"):
        TransformersBackend(device="cpu", static_cache="yes")  # type: ignore[arg-type]


def test_batched_encoding_gives_each_requests_own_ids_and_errors(backend: TransformersBackend) -> None:
    from ctxsynth.llm.base import RAW_ROLE

    backend.load()
    requests = [ask("Hi there"), ChatRequest([{"role": RAW_ROLE, "content": "Plain text, BOS as the tokenizer adds it"}],
                                             SamplingParams(max_tokens=4)),
                ask("x", max_tokens=0),
                ChatRequest([{"role": "user", "content": "Start"}, {"role": "assistant", "content": "Sure, the"}],
                            SamplingParams(max_tokens=4)),
                ask("café naïve " * 30)]
    from ctxsynth.llm.hf_prompts import encode_all

    prompts, errors = encode_all(backend._tokenizer, requests, None)
    assert sorted(prompts) == [0, 1, 3, 4] and list(errors) == [2] and "max_tokens must be >= 1" in errors[2]
    for i, ids in prompts.items():
        assert ids == backend.encode_prompt(requests[i])
