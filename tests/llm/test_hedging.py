"""Hedged attempts (ctxsynth.llm.hedging): a second attempt beside a slow one at the tail of a call."""

from __future__ import annotations

import asyncio
import time

from ctxsynth.llm.base import ChatRequest, SamplingParams
from ctxsynth.llm.hedging import hedged
from ctxsynth.llm.openai.backend import OpenAIBackend
from ctxsynth.testing import Fault, OpenAIServer


def now() -> float:
    """`started` for the unit tests: the attempt started when hedged() was called."""
    return _T0[0]


_T0 = [0.0]


def _attempts(delays: list[float], log: list[str]):
    """Attempt n sleeps delays[n] and returns its number; cancellations are logged."""
    _T0[0] = time.monotonic()

    async def attempt() -> int:
        n = len([e for e in log if e.startswith("start")])
        log.append(f"start {n}")
        try:
            await asyncio.sleep(delays[n])
        except asyncio.CancelledError:
            log.append(f"cancelled {n}")
            raise
        return n
    return attempt


def test_a_slow_attempt_gets_a_twin_and_the_first_success_wins() -> None:
    log: list[str] = []
    result = asyncio.run(hedged(_attempts([5.0, 0.05], log), lambda: 0.1, lambda: True, lambda r: True, now))
    assert result == (1, True)
    assert log == ["start 0", "start 1", "cancelled 0"]


def test_no_twin_while_others_wait_or_before_the_threshold() -> None:
    log: list[str] = []
    assert asyncio.run(hedged(_attempts([0.3], log), lambda: 0.1, lambda: False, lambda r: True, now)) == (0, False)
    assert asyncio.run(hedged(_attempts([0.3, 0.3], log), lambda: 1.0, lambda: True, lambda r: True, now)) == (1, False)
    assert log == ["start 0", "start 1"]


def test_a_failed_twin_does_not_win_over_a_later_success() -> None:
    log: list[str] = []
    result = asyncio.run(hedged(_attempts([0.4, 0.05], log), lambda: 0.1, lambda: True, lambda r: r == 0, now))
    assert result == (0, True) and "cancelled 0" not in log


def test_time_spent_waiting_for_a_slot_does_not_count_as_slowness() -> None:
    """`started` is None while the attempt waits for its slot: no twin however long that takes."""
    log: list[str] = []
    assert asyncio.run(hedged(_attempts([0.4], log), lambda: 0.1, lambda: True, lambda r: True, lambda: None)) == (0, False)


def test_a_stall_at_the_end_of_a_call_is_hedged_instead_of_waited_out() -> None:
    """The last request's first attempt stalls for 20 s: once 32 replies made the latencies known, a
    twin goes out after 2 x p99 (at least 1 s) and answers; without hedging the stall deadline (5 s)
    would be waited out. Nothing is lost or answered twice."""
    requests = [ChatRequest([{"role": "user", "content": f"question {i}"}], SamplingParams(temperature=0.0, max_tokens=8))
                for i in range(48)]
    with OpenAIServer(latency_s=0.05) as server:
        server.inject(Fault.stall(20.0), match=lambda body: body["messages"][-1]["content"] == "question 47")
        backend = OpenAIBackend("test-model", base_url=server.url, max_concurrency=8, timeout_s=60.0)
        start = time.monotonic()
        results = backend.generate(requests)
        seconds = time.monotonic() - start
        hits = server.hits
    assert all(r.ok for r in results) and results[47].attempts == 1
    assert hits == 49  # one hedge
    assert seconds < 4.0  # the stall deadline alone is 5 s
