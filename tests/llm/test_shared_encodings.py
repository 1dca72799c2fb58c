"""Prompts are tokenized once per `ctxsynth eval`: the ids the runner measured to fit each prompt go
to the transformers backend (ctxsynth.tokenize.shared_encodings), on the real SmolLM2 model (CPU).

Protects: the backend's ids are the ones it would have computed itself (chat, system prompt, truncated
and plain-text prompts alike); it encodes only what the runner did not (a spy on its real tokenizer
counts the texts); nothing is kept outside the block; another tokenizer definition never takes
SmolLM2's ids; and an evaluation gives the same predictions with the reuse as without.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ctxsynth import tokenize
from ctxsynth.eval.runner import evaluate, prepare_requests
from ctxsynth.llm.base import RAW_ROLE, ChatRequest, SamplingParams
from ctxsynth.llm.hf_backend import TransformersBackend
from ctxsynth.llm.hf_prompts import encode_all, render
from ctxsynth.records import EvalItem
from ctxsynth.tokenize import load_tokenizer, shared_encodings, take_encoding


class CountingTokenizer:
    """The backend's real tokenizer, counting the texts it is asked to encode."""

    def __init__(self, hf: Any) -> None:
        self.hf, self.texts = hf, 0

    def __call__(self, texts: Sequence[str], **kw: Any) -> Any:
        self.texts += len(texts) if isinstance(texts, list) else 1
        return self.hf(texts, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hf, name)


@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    b = TransformersBackend("smollm2-135m-instruct", device="cpu", batch_size=4)
    b.load()
    return b


def items(n: int = 6) -> list[EvalItem]:
    text = "The lighthouse keeper wrote in the log every night. " * 40
    return [EvalItem(id=f"q{k}", task="qa", prompt=f"{text}\nQuestion {k}: what did the keeper write in?",
                     answers=["the log"], metric="qa_f1", max_new_tokens=8) for k in range(n)]


def test_the_backend_takes_the_runners_ids_and_they_are_its_own(backend: TransformersBackend) -> None:
    tok = load_tokenizer("smollm2")
    long_one = EvalItem(id="long", task="qa", prompt="word " * 3000, answers=["x"], metric="qa_f1", max_new_tokens=8)
    its = [*items(), long_one]
    _, plain = prepare_requests(its, tok, 1024)  # the long item is cut in the middle to fit 1,024 tokens
    expected, _ = encode_all(backend._tokenizer, plain, None)
    spy = CountingTokenizer(backend._tokenizer)
    with shared_encodings():
        fitted, requests = prepare_requests(its, tok, 1024)
        assert fitted[-1] is not None and fitted[-1].truncated_tokens > 0
        system = ChatRequest([{"role": "system", "content": "Be brief."}, {"role": "user", "content": its[0].prompt}],
                             SamplingParams(max_tokens=4))
        raw = ChatRequest([{"role": RAW_ROLE, "content": its[1].prompt}], SamplingParams(max_tokens=4))
        prompts, errors = encode_all(spy, [*requests, system, raw], None)
    assert not errors
    assert [prompts[i] for i in range(len(its))] == [expected[i] for i in range(len(its))]
    assert prompts[len(its)] == backend.encode_prompt(system) and prompts[len(its) + 1] == backend.encode_prompt(raw)
    # encoded here: the cut prompt (re-rendered after the fit's batch), the system-prompt chat and the plain text
    assert spy.texts == 3


def test_nothing_is_kept_outside_the_block_and_each_kept_text_goes_once(backend: TransformersBackend) -> None:
    tok = load_tokenizer("smollm2")
    text, _ = render(backend._tokenizer, ChatRequest([{"role": "user", "content": "Hello"}], SamplingParams()))
    tok.encode_batch([text])
    assert take_encoding(backend._tokenizer, text) is None
    with shared_encodings():
        ids = tok.encode_batch([text])[0]
        assert take_encoding(backend._tokenizer, text) == ids
        assert take_encoding(backend._tokenizer, text) is None
        tok.encode_batch([text])
    assert tokenize._shared is None
    assert take_encoding(backend._tokenizer, text) is None


def test_another_tokenizer_definition_never_takes_smollm2s_ids() -> None:
    smol, gemma = load_tokenizer("smollm2"), load_tokenizer("gemma3-270m")
    with shared_encodings():
        smol.encode_batch(["The same words in two vocabularies."])
        assert take_encoding(gemma.hf, "The same words in two vocabularies.") is None
        assert take_encoding(smol.hf, "The same words in two vocabularies.") is not None


def test_an_evaluation_gives_the_same_predictions_with_and_without_the_reuse(
        backend: TransformersBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    its = items(4)
    spy = CountingTokenizer(backend._tokenizer)
    monkeypatch.setattr(backend, "_tokenizer", spy)
    evaluate(its, backend, tokenizer="smollm2", max_model_len=2048, out_dir=tmp_path / "shared")
    assert spy.texts == 0  # every prompt came from the runner's fit
    monkeypatch.setattr(backend, "reuses_prompt_ids", False)  # as a backend that tokenizes elsewhere
    evaluate(its, backend, tokenizer="smollm2", max_model_len=2048, out_dir=tmp_path / "alone")
    assert spy.texts == len(its)

    def predictions(run: str) -> list[str]:
        lines = (tmp_path / run / "predictions.jsonl").read_text().splitlines()
        return [json.loads(line)["prediction"] for line in lines]

    assert predictions("shared") == predictions("alone")



def test_a_backend_that_tokenizes_elsewhere_gets_nothing_kept(tmp_path: Path) -> None:
    """The offline fake backend (no local tokenizer): the eval keeps no ids while it generates."""
    from ctxsynth.llm.fake import FakeBackend

    seen: list[object] = []

    class Probe(FakeBackend):
        def generate(self, requests: Any, on_result: Any = None) -> Any:
            seen.append(tokenize._shared)
            return super().generate(requests, on_result)

    evaluate(items(2), Probe(words=3), tokenizer="smollm2", max_model_len=2048, out_dir=tmp_path / "fake")
    assert seen == [None]
