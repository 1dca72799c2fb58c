"""Concurrency control for the `openai` backend: how many requests may be in flight, and how long
one attempt may take before it stops counting or is given up.

`ConcurrencyController` reacts to the *share* of 429s over a window of replies, not to each one:
a server that is really overloaded answers a large share of requests with 429 (a server that caps
at 16 concurrent requests refuses 3 in 4 of 64), while sporadic 429s (a proxy hiccup, a shared
quota touched by someone else) are a few percent and need only a retry. Over a window of at least
`max(window_min, limit)` replies (or `window_s` seconds with a few replies):

- share > `overload_share` (20%): the limit is cut to what the window served,
  `limit * (1 - share)`, but at most halved per window (429s come back faster than answers, so an
  early window over-counts them; a window also lasts at least one typical latency). Replies to requests sent before the cut are ignored, so one burst cuts
  once. For the share to measure load, a refused attempt keeps its slot as long as an answered one
  would (the backend holds it for the typical latency), so refusals cannot cycle faster than
  answers and inflate the share.
- share <= `overload_share / 2`: the limit grows by one slot, probing carefully above a level that
  was overloaded; once `recover_s` seconds passed without a congested window it grows by a quarter
  per window (recovery with time). Windows close on time as well as on replies.
- in between: held.

A slot is a counter plus a FIFO of waiting futures: acquiring costs O(1) and a release wakes at
most the one waiter it hands its slot to (no wake-everyone condition).

`LatencyTracker` turns observed success latencies into two per-attempt thresholds: after
`stall_after()` seconds an attempt gives its slot back (it keeps waiting, but no longer blocks
other requests), after `deadline()` it is abandoned and retried. Both start at the configured
timeout and tighten only once enough replies have been seen, so slow-but-steady servers (a long
generation on a real model) keep their full timeout; a request abandoned once gets a doubled
deadline next time, so a reply that is slow rather than stuck is not retried for ever.

`AttemptWatch` applies them to one attempt: it frees the slot at the stall threshold and moves
the attempt's `asyncio.Timeout` to the deadline, re-reading both every half second while the
tracker is still warming up (a stall in the first wave is then cut once latencies are known).

`parse_retry_after` and `backoff_delay` say how long a retry waits.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections import deque
from collections.abc import Mapping
from datetime import timezone

log = logging.getLogger(__name__)

WARMUP_RECHECK_S = 0.5  # how often an attempt re-reads its thresholds while latencies are unknown


class ConcurrencyController:
    """An adaptive bound on requests in flight; see the module docstring."""

    def __init__(self, maximum: int, *, window_min: int = 16, window_s: float = 1.0,
                 overload_share: float = 0.2, recover_s: float = 5.0) -> None:
        if maximum < 1:
            raise ValueError("maximum concurrency must be >= 1")
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_flight = 0
        self.window_min = window_min
        self.window_s = window_s
        self.overload_share = overload_share
        self.recover_s = recover_s
        self.cuts = 0
        self.stalled = 0  # attempts that gave their slot back (AttemptWatch) and still wait for a reply
        self.min_window_s = 0.0  # set by the user to the typical latency
        self._congested_at = -math.inf  # when a window last had more than half the overload share
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._last_change = -math.inf
        self._window_start = time.monotonic()
        self._replies = 0
        self._limited = 0

    def idle(self) -> bool:
        """Whether a slot is free and nobody waits for one."""
        return not self._waiters and self.in_flight < int(self.limit)

    async def acquire(self) -> None:
        """Wait for a slot (first come, first served)."""
        if self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future  # the releaser counted our slot already
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted and cancelled in the same tick: give it on
            else:
                _discard(self._waiters, future)
            raise

    def release(self) -> None:
        """Give a slot back; hand it to the oldest waiter while the limit allows."""
        self.in_flight -= 1
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.in_flight < max(1, int(self.limit)):
            future = self._waiters.popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)

    def record(self, started: float, rate_limited: bool) -> None:
        """Count one reply (a 429 or anything else) to an attempt sent at `started`."""
        if started < self._last_change:
            return  # sent under the old limit: says nothing about the new one
        self._replies += 1
        self._limited += rate_limited
        now = time.monotonic()
        full = self._replies >= max(self.window_min, int(self.limit)) and now - self._window_start >= self.min_window_s
        if full or (now - self._window_start >= self.window_s and self._replies >= 4):
            self._close_window(now)

    def _close_window(self, now: float) -> None:
        share = self._limited / self._replies
        old = self.limit
        if share > self.overload_share / 2:
            self._congested_at = now
        if share > self.overload_share and self._replies >= self.window_min:  # a few replies prove nothing
            self.limit = max(1.0, self.limit / 2, self.limit * (1.0 - share))
            self.cuts += 1
            log.info("%.0f%% of %d replies were 429: concurrency limit %d -> %d",
                     100 * share, self._replies, int(old), int(self.limit))
        elif share <= self.overload_share / 2 and self.limit < self.maximum:
            step = self.limit / 4 if now - self._congested_at >= self.recover_s else 1.0
            self.limit = min(float(self.maximum), self.limit + max(1.0, step))
        if self.limit != old:
            self._last_change = now
        self._window_start, self._replies, self._limited = now, 0, 0
        self._grant()


def _discard(queue: deque[asyncio.Future[None]], item: asyncio.Future[None]) -> None:
    try:
        queue.remove(item)  # O(waiters), only on cancellation
    except ValueError:
        pass


class LatencyTracker:
    """Recent success latencies -> stall and deadline thresholds for one attempt."""

    def __init__(self, timeout_s: float, *, min_samples: int = 32, size: int = 256,
                 stall_factor: float = 3.0, stall_floor_s: float = 1.0,
                 deadline_factor: float = 8.0, deadline_floor_s: float = 5.0,
                 hedge_factor: float = 2.0, hedge_floor_s: float = 1.0) -> None:
        self.timeout_s = timeout_s
        self.min_samples = min_samples
        self.stall_factor, self.stall_floor_s = stall_factor, stall_floor_s
        self.deadline_factor, self.deadline_floor_s = deadline_factor, deadline_floor_s
        self.hedge_factor, self.hedge_floor_s = hedge_factor, hedge_floor_s
        self._samples: deque[float] = deque(maxlen=size)
        self._seen = 0
        self._p95 = self._p99 = math.inf
        self.typical = 0.0  # moving average of success latency (0 before the first)

    def observe(self, seconds: float) -> None:
        self._samples.append(seconds)
        self.typical = seconds if self._seen == 0 else 0.9 * self.typical + 0.1 * seconds
        self._seen += 1
        if self._seen >= self.min_samples and self._seen % 16 == 0:  # amortised: one sort per 16 replies
            ordered = sorted(self._samples)
            self._p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
            self._p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    @property
    def warm(self) -> bool:
        """Whether enough replies were seen for the thresholds to be below the timeout."""
        return math.isfinite(self._p99)

    def stall_after(self) -> float:
        """Seconds after which an attempt gives its slot back."""
        return min(self.timeout_s, max(self.stall_floor_s, self.stall_factor * self._p95))

    def hedge_after(self) -> float:
        """Seconds after which a second attempt may be sent beside a slow one (infinite while warming up)."""
        return max(self.hedge_floor_s, self.hedge_factor * self._p99)

    def deadline(self, escalation: int = 0) -> float:
        """Seconds after which an attempt is abandoned; doubled for each earlier timeout of the
        same request, so a request that is slow rather than stuck gets its full timeout in the end."""
        base = max(self.deadline_floor_s, self.deadline_factor * self._p99)
        return min(self.timeout_s, base * 2 ** escalation)


class AttemptWatch:
    """One attempt's stall and deadline: it gives its slot back after `stall_after()` and is abandoned
    after `deadline()`. While the latency tracker is still warming up (both thresholds are the
    configured timeout) they are re-read every `WARMUP_RECHECK_S`, so an attempt of the first wave
    that stalls is cut as soon as typical latencies are known instead of waiting out the timeout."""

    def __init__(self, controller: ConcurrencyController, latency: LatencyTracker, escalation: int) -> None:
        self.controller, self.latency, self.escalation = controller, latency, escalation
        self.started = time.monotonic()
        self.held = True
        self._timeout: asyncio.Timeout | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self, timeout: asyncio.Timeout) -> None:
        self._timeout = timeout
        self._check()

    def _check(self) -> None:
        latency, ctl, loop = self.latency, self.controller, asyncio.get_running_loop()
        elapsed = time.monotonic() - self.started
        stall, deadline = latency.stall_after(), latency.deadline(self.escalation)
        if self.held and elapsed >= stall and ctl.stalled < ctl.maximum:  # at most `maximum` such attempts
            self.held = False
            ctl.stalled += 1
            ctl.release()
        when = loop.time() + max(0.0, deadline - elapsed)
        if self._timeout is not None and not self._timeout.expired() and self._timeout.when() != when:
            self._timeout.reschedule(when)
        waits = [stall - elapsed] if self.held and elapsed < stall else []
        if not latency.warm:
            waits.append(WARMUP_RECHECK_S)
        self._handle = loop.call_later(min(waits), self._check) if waits else None

    def stop(self) -> None:
        """The attempt is over: no more checks (its timeout is finished)."""
        self._timeout = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def end(self) -> None:
        """Give the slot back (or leave the stalled count)."""
        self.stop()
        if self.held:
            self.controller.release()
        else:
            self.controller.stalled -= 1


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if not value:
            continue
        seconds: float | None
        try:
            seconds = float(value) / scale
        except ValueError:
            seconds = _seconds_until_http_date(value, now) if scale == 1.0 else None
        if seconds is not None and math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def _seconds_until_http_date(value: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() - now


def backoff_delay(attempt: int, base_s: float, max_s: float, retry_after: float | None, rng: random.Random) -> float:
    """The server's Retry-After when given (capped at `max_s`), else exponential backoff with full
    jitter: uniform(0, min(max_s, base_s * 2 ** (attempt - 1)))."""
    if retry_after is not None:
        return min(retry_after, max_s)
    return rng.uniform(0.0, min(max_s, base_s * 2 ** (attempt - 1)))
