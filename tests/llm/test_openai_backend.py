"""The `openai` backend against a real local chat-completions server with injected faults.

Every test talks HTTP to `ctxsynth.testing.OpenAIServer`; nothing in the client is patched.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import threading
import time

import pytest

from ctxsynth.llm import BACKENDS
from ctxsynth.llm.base import ChatRequest, ChatResult, SamplingParams
from ctxsynth.llm.concurrency import backoff_delay, parse_retry_after
from ctxsynth.llm.openai.backend import (
    PLACEHOLDER_KEY,
    MissingAPIKeyError,
    OpenAIBackend,
)
from ctxsynth.testing import Fault, Hit, OpenAIServer, Reply, request_fingerprint

SECRET = "sk-test-SECRET-0123456789"


def make_requests(n: int, prefix: str = "question") -> list[ChatRequest]:
    return [
        ChatRequest([{"role": "user", "content": f"{prefix} {i}"}], SamplingParams(temperature=0.0, max_tokens=32, seed=i))
        for i in range(n)
    ]


def make_backend(server: OpenAIServer, **options: object) -> OpenAIBackend:
    settings: dict = {"timeout_s": 1.0, "max_retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    settings.update(options)
    return OpenAIBackend("test-model", base_url=server.url, **settings)


def collect(backend: OpenAIBackend, requests: list[ChatRequest]) -> tuple[list[ChatResult], list[int]]:
    called: list[int] = []
    results = backend.generate(requests, on_result=lambda i, r: called.append(i))
    return results, called


def content_is(text: str):
    return lambda body: body["messages"][-1]["content"] == text


def test_scripted_replies_arrive_in_order_with_usage_and_sampling_params() -> None:
    bodies: list[dict] = []

    def responder(body: dict) -> Reply:
        bodies.append(body)
        question = body["messages"][-1]["content"]
        return Reply(question.upper(), usage={"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9})

    requests = make_requests(10)
    with OpenAIServer(responder) as server:
        results, called = collect(make_backend(server, max_concurrency=4), requests)
        assert server.hits == 10 and set(server.hits_by_key().values()) == {1}
    assert [r.text for r in results] == [f"QUESTION {i}" for i in range(10)]
    assert all(r.finish_reason == "stop" and r.attempts == 1 and r.error is None for r in results)
    assert results[0].usage == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    assert sorted(called) == list(range(10))
    sent = next(b for b in bodies if b["messages"][-1]["content"] == "question 3")
    assert (sent["model"], sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"]) == (
        "test-model", 0.0, 1.0, 32, 3)


@pytest.mark.parametrize(
    "fault",
    [Fault.rate_limit(retry_after=0), Fault.http_error(500), Fault.http_error(503), Fault.stall(3.0),
     Fault.malformed(), Fault.drop(), Fault.http_error(408), Fault.http_error(409)],
    ids=["429", "500", "503", "stall", "malformed", "drop", "408", "409"],
)
def test_a_transient_fault_is_retried_once_and_the_request_answered(fault: Fault) -> None:
    requests = make_requests(4)
    with OpenAIServer() as server:
        server.inject(fault, match=content_is("question 2"))
        results, called = collect(make_backend(server, timeout_s=1.0), requests)
        hits = server.hits_by_key()
        assert server.hits == 5
    assert [r.text for r in results] == [f"echo: question {i}" for i in range(4)]
    assert [r.attempts for r in results] == [1, 1, 2, 1]
    assert sorted(hits.values()) == [1, 1, 1, 2]
    assert sorted(called) == [0, 1, 2, 3]


def test_a_reply_cut_at_its_budget_is_answered_not_ok_and_not_retried() -> None:
    def responder(body: dict) -> Reply:
        return Reply("a long answer that gets cut", "length", usage={"prompt_tokens": 3, "completion_tokens": 32})

    with OpenAIServer(responder) as server:
        [result] = make_backend(server).generate(make_requests(1))
        assert server.hits == 1  # the same request would be cut again: the caller decides
    assert result.answered and not result.ok and result.failure == "truncated" and not result.infrastructure
    assert result.finish_reason == "length" and result.attempts == 1 and result.error is None


def test_a_reply_cut_short_of_its_budget_is_retried_and_the_last_cut_kept_if_all_are() -> None:
    with OpenAIServer(lambda body: "a long answer that gets cut") as server:
        server.inject(Fault.truncated())  # 2 words of a 32-token budget: not the budget's cut
        [result] = make_backend(server).generate(make_requests(1))
        assert server.hits == 2
    assert result.ok and result.attempts == 2 and result.text == "a long answer that gets cut"
    with OpenAIServer(lambda body: "a long answer that gets cut", fault_rule=lambda hit: Fault.truncated()) as server:
        [result] = make_backend(server, max_retries=2).generate(make_requests(1))
        assert server.hits == 3
    assert result.text == "a long answer" and result.failure == "truncated" and result.attempts == 3


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(Fault.rate_limit(), "http_429_exhausted"), (Fault.http_error(502), "http_502_exhausted"),
     (Fault.stall(5.0), "timeout"), (Fault.malformed(), "malformed_response"), (Fault.drop(), "connection_error")],
    ids=["429", "502", "stall", "malformed", "drop"],
)
def test_a_persistent_fault_ends_as_a_failed_result_with_its_reason(fault: Fault, reason: str) -> None:
    def rule(hit: Hit) -> Fault | None:
        return fault if hit.body["messages"][-1]["content"] == "question 1" else None

    with OpenAIServer(fault_rule=rule) as server:
        results, called = collect(make_backend(server, max_retries=2, timeout_s=0.6), make_requests(3))
        hits = server.hits_by_key()
    assert results[1].error == reason and results[1].text is None and not results[1].ok
    assert results[1].attempts == 3
    assert results[1].failure == ("rate_limit" if reason.startswith("http_429") else "outage")
    assert results[1].infrastructure
    assert results[0].ok and results[2].ok
    assert sorted(hits.values()) == [1, 1, 3]
    assert sorted(called) == [0, 1, 2]


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried_and_carry_the_server_message(status: int) -> None:
    with OpenAIServer() as server:
        server.inject(Fault.http_error(status, message="prompt is too long"))
        [result] = make_backend(server).generate(make_requests(1))
        assert server.hits == 1
    assert result.error == f"http_{status}: prompt is too long"
    assert result.attempts == 1
    assert result.failure == {401: "auth", 404: "not_found"}.get(status, "rejected")
    assert result.infrastructure == (status in (401, 404))


def test_mixed_faults_every_request_ends_answered_or_failed_and_hits_match_attempts() -> None:
    """Nothing lost, nothing duplicated: each request's server hits equal its recorded attempts."""
    faults = [None, None, Fault.rate_limit(retry_after=0), Fault.http_error(500), Fault.malformed(),
              Fault.drop(), Fault.stall(1.0), Fault.truncated()]

    def rule(hit: Hit) -> Fault | None:
        if hit.body["messages"][-1]["content"].endswith("7"):
            return Fault.http_error(503)  # "question 7" and "question 17" never succeed
        return random.Random(f"{hit.key}-{hit.n}").choice(faults) if hit.n <= 2 else None

    requests = make_requests(24)
    with OpenAIServer(fault_rule=rule) as server:
        results, called = collect(make_backend(server, max_concurrency=6, timeout_s=0.5, max_retries=4), requests)
        hits = server.hits_by_key()
    assert sorted(called) == list(range(24))
    for request, result in zip(requests, results, strict=True):
        body = {"model": "test-model", "messages": list(request.messages), "temperature": 0.0, "top_p": 1.0,
                "max_tokens": 32, "seed": request.params.seed}
        assert hits[request_fingerprint(body)] == result.attempts
        if request.messages[-1]["content"].endswith("7"):
            assert result.error == "http_503_exhausted" and result.attempts == 5
        else:
            expected = f"echo: {request.messages[-1]['content']}"
            assert result.ok, result.error  # cut-short replies were retried
            assert result.text == expected


@pytest.mark.parametrize(("form", "min_wait"), [("seconds", 1.0), ("milliseconds", 0.4), ("http-date", 0.9)])
def test_retry_after_is_honoured_before_the_next_attempt(form: str, min_wait: float) -> None:
    fault = {
        "seconds": Fault.rate_limit(retry_after=1),
        "milliseconds": Fault.rate_limit(retry_after_ms=400),
        "http-date": Fault.rate_limit(retry_after=email.utils.formatdate(time.time() + 2.0, usegmt=True)),
    }[form]
    with OpenAIServer() as server:
        server.inject(fault)
        backend = make_backend(server, backoff_base_s=0.001, backoff_max_s=5.0)
        start = time.monotonic()
        [result] = backend.generate(make_requests(1))
        elapsed = time.monotonic() - start
    assert result.ok and result.attempts == 2
    assert min_wait <= elapsed < min_wait + 2.5


def test_parse_retry_after_reads_seconds_dates_and_milliseconds() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after({"Retry-After": "3"}, now) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}, now) == 0.25
    assert parse_retry_after({"Retry-After": email.utils.formatdate(now + 30, usegmt=True)}, now) == 30.0
    assert parse_retry_after({"Retry-After": email.utils.formatdate(now - 30, usegmt=True)}, now) == 0.0
    assert parse_retry_after({"Retry-After": "soon"}, now) is None
    assert parse_retry_after({}, now) is None


def test_backoff_is_full_jitter_bounded_by_the_cap_and_prefers_retry_after() -> None:
    rng = random.Random(0)
    delays = [backoff_delay(attempt, 1.0, 8.0, None, rng) for attempt in (1, 2, 3, 4, 5, 6) for _ in range(50)]
    assert all(0.0 <= d <= 8.0 for d in delays) and max(delays) > 4.0
    assert all(backoff_delay(1, 1.0, 8.0, None, rng) <= 1.0 for _ in range(50))
    assert backoff_delay(1, 1.0, 8.0, 2.5, rng) == 2.5
    assert backoff_delay(1, 1.0, 8.0, 100.0, rng) == 8.0


def test_the_concurrency_bound_is_never_exceeded() -> None:
    with OpenAIServer(latency_s=0.15) as server:
        results = make_backend(server, max_concurrency=3).generate(make_requests(12))
        assert server.max_in_flight == 3
    assert all(r.ok for r in results)


def test_the_api_key_is_sent_but_never_in_identity_errors_or_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with OpenAIServer() as server:
        server.inject(Fault.http_error(401, message=f"invalid key {SECRET}"), match=content_is("question 0"))
        server.inject(Fault.http_error(500, message=f"boom {SECRET}"), times=10, match=content_is("question 1"))
        backend = make_backend(server, api_key_env="CTXSYNTH_TEST_KEY", max_retries=1)
        monkeypatch.setenv("CTXSYNTH_TEST_KEY", SECRET)  # read when requests go out, not when built
        results = backend.generate(make_requests(3))
        auth = {r.authorization for r in server.records()}
    assert auth == {f"Bearer {SECRET}"}
    assert results[0].error == "http_401: invalid key ***"
    assert results[1].error == "http_500_exhausted" and results[2].ok
    for text in (json.dumps(backend.identity()), repr(results), caplog.text, repr(vars(backend))):
        assert SECRET not in text
    assert "openai" in caplog.text  # the logs were captured at all


def test_a_missing_key_for_a_remote_url_is_a_clear_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTXSYNTH_ABSENT_KEY", raising=False)
    backend = OpenAIBackend("gpt-x", base_url="https://api.example.invalid/v1", api_key_env="CTXSYNTH_ABSENT_KEY")
    with pytest.raises(MissingAPIKeyError, match="CTXSYNTH_ABSENT_KEY"):
        backend.generate(make_requests(1))


def test_a_local_server_without_a_key_gets_a_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTXSYNTH_ABSENT_KEY", raising=False)
    with OpenAIServer() as server:
        [result] = make_backend(server, api_key_env="CTXSYNTH_ABSENT_KEY").generate(make_requests(1))
        [record] = server.records()
    assert result.ok and record.authorization == f"Bearer {PLACEHOLDER_KEY}"


def test_generate_works_from_a_plain_thread_and_from_inside_a_running_loop() -> None:
    with OpenAIServer() as server:
        backend = make_backend(server)
        out: dict[str, list[ChatResult]] = {}
        worker = threading.Thread(target=lambda: out.setdefault("thread", backend.generate(make_requests(2))))
        worker.start()
        worker.join(timeout=20)

        async def inside_loop() -> list[ChatResult]:
            return backend.generate(make_requests(2))

        out["loop"] = asyncio.run(inside_loop())
        out["again"] = backend.generate(make_requests(2))  # a second batch on the same backend
    assert all(r.ok for rs in out.values() for r in rs) and len(out) == 3


def test_identity_names_backend_model_and_extra_body_but_not_the_url() -> None:
    bodies: list[dict] = []
    with OpenAIServer(lambda body: bodies.append(body) or "ok") as server:
        backend = make_backend(server, extra_body={"top_k": 20})
        backend.generate(make_requests(1))
    assert backend.identity() == {"backend": "openai", "model": "test-model", "extra_body": {"top_k": 20}}
    assert bodies[0]["top_k"] == 20
    assert BACKENDS.get("openai") is OpenAIBackend


def test_server_lists_its_model_and_turns_a_broken_responder_into_a_500() -> None:
    import openai

    def broken(body: dict) -> str:
        raise RuntimeError("responder bug")

    with OpenAIServer(broken, model="served-model") as server:
        client = openai.OpenAI(api_key="x", base_url=server.url, max_retries=0)
        assert [m.id for m in client.models.list()] == ["served-model"]
        [result] = make_backend(server, max_retries=1).generate(make_requests(1))
    assert result.error == "http_500_exhausted" and result.attempts == 2


def test_openai_base_url_from_the_environment_is_used_and_counts_as_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without base_url the client falls back to OPENAI_BASE_URL; the key check must follow it, so a
    local server named only there needs no key (before, this raised MissingAPIKeyError)."""
    monkeypatch.delenv("CTXSYNTH_ABSENT_KEY", raising=False)
    with OpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        backend = OpenAIBackend("test-model", api_key_env="CTXSYNTH_ABSENT_KEY", timeout_s=5.0, max_retries=0)
        [result] = backend.generate(make_requests(1))
        [record] = server.records()
    assert result.ok and record.authorization == f"Bearer {PLACEHOLDER_KEY}"


def test_max_completion_tokens_field_carries_the_budget_instead_of_max_tokens() -> None:
    bodies: list[dict] = []
    with OpenAIServer(lambda body: bodies.append(body) or "ok") as server:
        make_backend(server, max_tokens_field="max_completion_tokens").generate(make_requests(1))
        make_backend(server).generate(make_requests(1, prefix="plain"))
    assert bodies[0]["max_completion_tokens"] == 32 and "max_tokens" not in bodies[0]
    assert bodies[1]["max_tokens"] == 32 and "max_completion_tokens" not in bodies[1]
    with pytest.raises(ValueError, match="max_completion_tokens"):
        OpenAIBackend("m", max_tokens_field="max_new_tokens")
