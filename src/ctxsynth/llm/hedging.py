"""Hedged attempts: at the tail of a call, a second attempt beside a slow one.

When nothing else waits to be sent (the request queue is empty right now) and a slot is free, an
attempt that has run longer than `LatencyTracker.hedge_after()` (twice the observed p99, at least
1 s) gets a twin: the same request sent again. The first successful reply wins and the other attempt
is cancelled (its connection closed, its slot given back). Without this, a request whose attempt
stalls near the end of a call waits out the stall deadline (8 x p99, at least 5 s, doubled after
each timeout) while every other slot sits idle. Hedges only use capacity nobody else is waiting
for, and only for attempts already slower than almost all replies seen, so they add few requests:
the backend counts them (`hedges` in its log line).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

RECHECK_S = 0.25  # how often a slow attempt re-checks whether the queue has drained and a slot is free
WARMUP_S = 1.0  # how often an attempt re-reads hedge_after() while it is still infinite (too few replies)


async def hedged(attempt: Callable[[], Awaitable[T]], hedge_after: Callable[[], float],
                 may_hedge: Callable[[], bool], ok: Callable[[T], bool],
                 started: Callable[[], float | None]) -> tuple[T, bool]:
    """Run `attempt()`; once it has run `hedge_after()` seconds since `started()` (the time.monotonic()
    at which it got its slot; None while it waits for one) and `may_hedge()` holds, run a second
    `attempt()` beside it. Returns (the first outcome that is `ok`, else the last to finish; whether a
    hedge was sent). The attempt still running at the end, or both when this is cancelled, is cancelled."""

    def running() -> float:  # seconds since the first attempt got its slot (waiting for one is not slowness)
        since = started()
        return 0.0 if since is None else time.monotonic() - since

    futures: list[asyncio.Future[T]] = [asyncio.ensure_future(attempt())]
    try:
        while True:
            left = hedge_after() - running()  # one wait for most attempts: they end before it
            done, _ = await asyncio.wait(futures, timeout=max(RECHECK_S, left) if left < float("inf") else WARMUP_S)
            if done:
                return futures[0].result(), False
            if running() >= hedge_after() and may_hedge():
                break
        futures.append(asyncio.ensure_future(attempt()))
        pending: set[asyncio.Future[T]] = set(futures)
        last: T | None = None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                last = future.result()
                if ok(last):
                    return last, True
        assert last is not None  # both finished
        return last, True
    finally:
        for future in futures:
            if not future.done():
                future.cancel()
