"""The transformers backend's decoding options and prefill (ctxsynth.llm.hf_backend).

Protects: `no_repeat_ngram_size` and `repetition_penalty` act on the reply's own tokens only (a
prompt n-gram or token stays allowed, hand-computed below), both are part of the cache identity
only when on, bad values are refused, and a final assistant message is continued, not answered.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from ctxsynth.errors import ConfigError
from ctxsynth.llm.base import ChatRequest, SamplingParams
from ctxsynth.llm.hf_backend import GeneratedNoRepeatNGram, TransformersBackend

NEG = float("-inf")


def test_no_repeat_ngram_bans_only_repeats_of_generated_ngrams() -> None:
    # prompt (width 3): 5 6 7 | generated: 1 2 1 -> the generated bigram (1, 2) bans 2 after 1;
    # the prompt bigram (5, 6) would ban 6 after 5, but the prompt does not count
    ids = torch.tensor([[5, 6, 7, 1, 2, 1], [5, 6, 7, 5, 3, 5]])
    scores = torch.zeros(2, 8)
    out = GeneratedNoRepeatNGram(2, prompt_width=3)(ids, scores.clone())
    assert out[0].tolist() == [0, 0, NEG, 0, 0, 0, 0, 0]
    assert out[1].tolist() == [0, 0, 0, NEG, 0, 0, 0, 0]  # generated (5, 3) bans 3; prompt (5, 6) allows 6


def test_repetition_penalty_skips_the_prompt() -> None:
    ids = torch.tensor([[4, 5, 1, 2]])  # prompt 4 5, generated 1 2
    scores = torch.tensor([[1.0, 2.0, -2.0, 3.0, 4.0, 5.0]])
    out = RepetitionPenaltyLogitsProcessor(2.0, prompt_ignore_length=2)(ids, scores.clone())
    assert out.tolist() == [[1.0, 1.0, -4.0, 3.0, 4.0, 5.0]]  # 1: 2/2, 2: -2*2; prompt tokens 4, 5 untouched


def test_options_are_checked_and_in_the_identity_only_when_on() -> None:
    plain = TransformersBackend(device="cpu").identity()
    assert "repetition_penalty" not in plain and "no_repeat_ngram_size" not in plain
    tuned = TransformersBackend(device="cpu", repetition_penalty=1.2, no_repeat_ngram_size=4).identity()
    assert tuned == {**plain, "repetition_penalty": 1.2, "no_repeat_ngram_size": 4}
    for bad in ({"repetition_penalty": 0.0}, {"no_repeat_ngram_size": -1}):
        with pytest.raises(ConfigError, match="repetition_penalty must be > 0"):
            TransformersBackend(device="cpu", **bad)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    return TransformersBackend("smollm2-135m-instruct", device="cpu", batch_size=4, no_repeat_ngram_size=2)


def test_a_final_assistant_message_is_continued(backend: TransformersBackend) -> None:
    user = {"role": "user", "content": "Name the capital of France in one sentence."}
    request = ChatRequest([user, {"role": "assistant", "content": "The capital of France is"}],
                          SamplingParams(temperature=0.0, max_tokens=6, seed=0))
    ids = backend.encode_prompt(request)
    text = backend._tokenizer.decode(ids)
    assert text.endswith("<|im_start|>assistant\nThe capital of France is")  # open, no end-of-turn
    result = backend.generate([request])[0]
    assert result.answered and "Paris" in (result.text or "")
    assert not (result.text or "").lstrip().startswith("The capital")  # the continuation only


def test_greedy_loop_is_broken_on_the_real_model(backend: TransformersBackend) -> None:
    # greedy SmolLM2 repeats token bigrams within 48 tokens of a story; with no_repeat_ngram_size=2 none
    # repeats (counted on the reply's tokens, re-encoded from its text)
    ask = ChatRequest([{"role": "user", "content": "Write a story about a cat named Tom."}],
                      SamplingParams(temperature=0.0, max_tokens=48, seed=0))
    plain = TransformersBackend(device="cpu")
    plain._model, plain._tokenizer = backend._model, backend._tokenizer

    def repeated_bigrams(text: str | None) -> int:
        ids = backend._tokenizer(text or "", add_special_tokens=False)["input_ids"]
        return sum(n - 1 for n in Counter(zip(ids, ids[1:], strict=False)).values())

    assert repeated_bigrams(plain.generate([ask])[0].text) >= 2
    assert repeated_bigrams(backend.generate([ask])[0].text) == 0
