"""The `openai` backend's concurrency control and streaming, against the real local server.

The controller must tell sporadic 429s (retry, keep the limit) from an overloaded server (cut to
what it serves), free slots held by stalled attempts, start each call healthy, and take requests
lazily so a call holds only what is in flight.
"""

from __future__ import annotations

import asyncio

import pytest

from ctxsynth.llm.base import ChatRequest, ChatResult, RequestQueue, SamplingParams
from ctxsynth.llm.cache import CachedBackend, RequestCache
from ctxsynth.llm.concurrency import ConcurrencyController, LatencyTracker
from ctxsynth.llm.openai.backend import OpenAIBackend
from ctxsynth.testing import Fault, Hit, OpenAIServer, Reply


def requests(n: int, prefix: str = "question", max_tokens: int = 32) -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": f"{prefix} {i}"}], SamplingParams(temperature=0.0, max_tokens=max_tokens))
            for i in range(n)]


def backend(server: OpenAIServer, **options: object) -> OpenAIBackend:
    settings: dict = {"timeout_s": 10.0, "max_retries": 6, "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    settings.update(options)
    return OpenAIBackend("test-model", base_url=server.url, **settings)


def index(hit: Hit) -> int:
    return int(hit.body["messages"][-1]["content"].split()[-1])


def test_sporadic_429s_are_retried_without_cutting_the_limit() -> None:
    """One first attempt in 20 refused at random: retried, and the limit stays at its maximum
    (the old rule halved on each 429 and ran at a fraction of the allowed concurrency)."""
    refuse = Fault.rate_limit(retry_after=0)
    # 0.5 s replies leave a CPU-starved client (CI at high load) time to refill its 16 slots
    with OpenAIServer(latency_s=0.5, fault_rule=lambda hit: refuse if hit.n == 1 and index(hit) % 20 == 7 else None) as server:
        client = backend(server, max_concurrency=16)
        results = client.generate(requests(200))
        records = server.records()
    assert all(r.ok for r in results) and sum(r.attempts for r in results) == 210
    assert client.concurrency_limit == 16.0
    # near full width throughout (halving on each 429 would leave a handful in flight)
    assert min(max(r.in_flight for r in records[k:k + 20]) for k in range(40, 160, 20)) >= 14


def test_an_overloaded_server_is_met_at_its_capacity_with_no_failures() -> None:
    with OpenAIServer(latency_s=0.1, overload_above=4) as server:
        client = backend(server, max_concurrency=32)
        results = client.generate(requests(150))
        stats = server.stats()
    assert all(r.ok for r in results)
    assert 3.0 <= client.concurrency_limit <= 8.0
    refused = stats["outcomes"].get("http_429", 0)
    assert refused < 150  # the SDK's semaphore of 32 would be refused ~7 times per answer here


def test_each_call_starts_from_the_full_limit() -> None:
    with OpenAIServer(latency_s=0.1, overload_above=2) as server:
        client = backend(server, max_concurrency=8)
        client.generate(requests(40))
        assert client.concurrency_limit < 8
        server.overload_above = None  # the server recovered
        server.latency_s = 0.5  # long enough for all 8 to be in flight together on a busy machine
        server.reset_stats()
        client.generate(requests(16, prefix="again"))
        assert server.stats()["max_in_flight"] == 8


def test_a_stalled_attempt_gives_its_slot_back_and_the_rest_flows_past_it() -> None:
    """Limit 2; request 40 stalls for 2 s once 32 latencies are known: after stall_after (the 1 s
    floor) its slot is free, so a third request is in flight beside it, and it still answers (no
    hedge: the others are done before the stall ends, and a hedge would end it; test_hedging.py)."""
    with OpenAIServer(latency_s=0.02) as server:
        server.inject(Fault.stall(2.0), match=lambda body: body["messages"][-1]["content"] == "question 40")
        results = backend(server, max_concurrency=2, hedge=False).generate(requests(120))
        records = server.records()
    assert all(r.ok for r in results) and results[40].attempts == 1
    assert max(r.in_flight for r in records) == 3
    stalled = next(r for r in records if r.outcome == "stall")
    assert stalled.total < len(records) - 20  # many requests answered after it arrived and before it ended


def test_a_stall_in_the_first_wave_is_abandoned_once_latencies_are_known() -> None:
    """Request 0 stalls for 20 s before any latency is known (its thresholds are the 60 s timeout
    when it starts); once 32 replies are in, its deadline is re-read (the 5 s floor) and it is
    abandoned and retried: the server sees the client hang up on it, long before the stall ends."""
    with OpenAIServer(latency_s=0.02) as server:
        server.inject(Fault.stall(20.0), match=lambda body: body["messages"][-1]["content"] == "question 0")
        # hedge=False: the deadline mechanism alone (a hedge would end the stall sooner, see test_hedging.py)
        results = backend(server, max_concurrency=8, timeout_s=60.0, hedge=False).generate(requests(120))
        records = server.records()
    assert all(r.ok for r in results) and results[0].attempts == 2
    assert sorted(r.outcome for r in records) == ["abandoned"] + ["ok"] * 120  # one retry, nothing else


def test_stream_takes_requests_lazily_and_callbacks_may_push_follow_ups() -> None:
    taken: list[int] = []
    seen_when_first_done: list[int] = []

    def source():
        for i, request in enumerate(requests(200)):
            taken.append(i)
            yield request

    queue = RequestQueue(source())
    answers: dict[int, ChatResult] = {}

    def on_result(i: int, result: ChatResult) -> None:
        if not seen_when_first_done:
            seen_when_first_done.append(len(taken))
        answers[i] = result
        if result.text and result.text.startswith("echo: question") and int(result.text.split()[-1]) < 5:
            queue.push(ChatRequest([{"role": "user", "content": f"follow-up {result.text.split()[-1]}"}]))

    with OpenAIServer(latency_s=0.05) as server:
        backend(server, max_concurrency=4).stream(queue, on_result)
        assert server.hits == 205
    assert seen_when_first_done[0] <= 3 * 4 + 1  # never the whole source up front
    assert sorted(answers) == list(range(205)) and all(r.ok for r in answers.values())
    assert sorted(r.text for r in answers.values() if "follow-up" in (r.text or "")) == [
        f"echo: follow-up {i}" for i in range(5)]


def test_the_cache_streams_hits_sends_duplicates_once_and_keeps_truncated_answers(tmp_path) -> None:
    def responder(body: dict) -> Reply:
        text = body["messages"][-1]["content"]
        return Reply(f"re {text}", "length" if text.endswith("3") else "stop",
                     usage={"prompt_tokens": 1, "completion_tokens": 32})

    batch = requests(6) + requests(2)  # the last two repeat the first two
    with OpenAIServer(responder, latency_s=0.02) as server:
        cached = CachedBackend(backend(server), RequestCache(tmp_path / "cache.sqlite"))
        first = cached.generate(batch)
        again: dict[int, ChatResult] = {}
        cached.stream(iter(batch), lambda i, r: again.__setitem__(i, r))
        assert server.hits == 6
    assert [r.text for r in first] == [f"re question {i}" for i in (0, 1, 2, 3, 4, 5, 0, 1)]
    assert first[3].failure == "truncated" and again[3].cached and again[3].failure == "truncated"
    assert all(again[i].cached for i in range(8)) and [again[i].text for i in range(8)] == [r.text for r in first]


def test_the_controller_cuts_on_a_429_share_holds_in_between_and_grows_back() -> None:
    async def scenario() -> list[float]:
        ctl = ConcurrencyController(64, window_min=16, recover_s=3600.0)
        seen = []

        def window(share: float) -> None:  # one window: max(16, limit) replies, sent after any cut
            n = max(16, int(ctl.limit))
            for k in range(n):
                ctl.record(float("inf"), rate_limited=k < round(share * n))
            seen.append(ctl.limit)

        for share in (0.75, 0.75, 1 / 16, 0.0, 2 / 18):
            window(share)
        ctl.recover_s = 0.0
        window(0.0)
        return seen

    # 75% refused: halved at most (64 -> 32), then 32 * 0.25 = 8 < 16: halved again; 1/16 and 0: +1
    # (probing above a congested level); 2/18 = 11%: held; no congestion for recover_s: +25%
    assert asyncio.run(scenario()) == [32.0, 16.0, 17.0, 18.0, 18.0, 22.5]


def test_the_controller_hands_a_released_slot_to_the_oldest_waiter_only() -> None:
    async def scenario() -> list[str]:
        ctl = ConcurrencyController(2)
        order: list[str] = []
        await ctl.acquire()
        await ctl.acquire()

        async def wait(name: str) -> None:
            await ctl.acquire()
            order.append(name)

        tasks = [asyncio.create_task(wait(n)) for n in ("a", "b", "c")]
        await asyncio.sleep(0)
        assert order == [] and ctl.in_flight == 2
        ctl.release()
        await asyncio.sleep(0)
        assert order == ["a"] and ctl.in_flight == 2
        ctl.release()
        ctl.release()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c"]


@pytest.mark.parametrize(("latencies", "stall", "deadline"), [([], 120.0, 120.0), ([0.5] * 64, 1.5, 5.0),
                                                               ([2.0] * 64, 6.0, 16.0)])
def test_latency_thresholds_start_at_the_timeout_and_tighten_with_evidence(
        latencies: list[float], stall: float, deadline: float) -> None:
    tracker = LatencyTracker(120.0)
    for seconds in latencies:
        tracker.observe(seconds)
    assert tracker.stall_after() == stall and tracker.deadline() == deadline
    assert tracker.deadline(escalation=10) == 120.0


def test_an_exception_in_the_callback_stops_the_call_and_reaches_the_caller() -> None:
    def on_result(i: int, result: ChatResult) -> None:
        if i == 3:
            raise RuntimeError("writer failed")

    with OpenAIServer(latency_s=0.01) as server:
        with pytest.raises(RuntimeError, match="writer failed"):
            backend(server, max_concurrency=2).stream(requests(50), on_result)
        assert server.hits < 50
