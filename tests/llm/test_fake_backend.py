"""The fake backend: deterministic, offline, honours max_tokens, and plugs into the cache and registry."""

from __future__ import annotations

import subprocess
import sys

from ctxsynth.llm import BACKENDS
from ctxsynth.llm.base import ChatRequest, SamplingParams
from ctxsynth.llm.cache import CachedBackend, RequestCache
from ctxsynth.llm.fake import FakeBackend

USER = "Question: Which river flows through Paris? Answer: the Seine, which crosses the city."


def request(seed: int | None = 1, max_tokens: int = 4096, content: str = USER) -> ChatRequest:
    return ChatRequest([{"role": "system", "content": "be brief"}, {"role": "user", "content": content}],
                       SamplingParams(seed=seed, max_tokens=max_tokens))


def test_same_messages_and_seed_give_the_same_reply_across_instances() -> None:
    a = FakeBackend().generate([request(seed=3)])[0]
    b = FakeBackend().generate([request(seed=3)])[0]
    assert a.ok and a.text == b.text


def test_another_seed_gives_another_reply() -> None:
    texts = {FakeBackend().generate([request(seed=s)])[0].text for s in range(5)}
    assert len(texts) == 5


def test_reply_is_a_context_of_the_requested_length_built_from_the_user_words() -> None:
    result = FakeBackend(words=50).generate([request()])[0]
    assert result.text.startswith("Context: ")
    body = result.text.removeprefix("Context: ").split()
    assert len(body) == 50 and result.usage["completion_tokens"] == 50
    source = {w.strip(".,?:").lower() for w in USER.split()}
    assert {w.strip(".,?:").lower() for w in body} <= source
    assert result.finish_reason == "stop"
    assert result.usage["prompt_tokens"] == len(USER.split()) + 2


def test_reply_longer_than_max_tokens_is_cut_and_marked_length() -> None:
    result = FakeBackend(words=100).generate([request(max_tokens=10)])[0]
    assert result.finish_reason == "length"
    assert len(result.text.removeprefix("Context: ").split()) == 10


def test_finish_reason_knob_is_reported() -> None:
    assert FakeBackend(finish_reason="content_filter").generate([request()])[0].finish_reason == "content_filter"


def test_request_without_user_message_fails_alone_and_callbacks_cover_every_request() -> None:
    bad = ChatRequest([{"role": "system", "content": "only system"}], SamplingParams(seed=1))
    seen: list[int] = []
    results = FakeBackend().generate([request(), bad, request(seed=2)], on_result=lambda i, r: seen.append(i))
    assert [r.ok for r in results] == [True, False, True]
    assert "no user message" in (results[1].error or "")
    assert seen == [0, 1, 2]


def test_registry_finds_it_and_knobs_change_the_cache_identity(tmp_path) -> None:
    assert BACKENDS.get("fake") is FakeBackend
    assert FakeBackend(words=10).identity() != FakeBackend(words=20).identity()
    cache = RequestCache(tmp_path / "cache.sqlite")
    cached = CachedBackend(FakeBackend(words=10), cache)
    first = cached.generate([request(seed=9)])[0]
    again = cached.generate([request(seed=9)])[0]
    assert not first.cached and again.cached and again.text == first.text
    cache.close()


def test_importing_it_does_not_import_torch() -> None:
    code = "import sys, ctxsynth.llm.fake; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
