"""The `openai` backend: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, SGLang, ...).

Requests go out concurrently through the official async client (its aiohttp transport,
`openai[aiohttp]`, where installed) with its own retries switched off, because retrying is done here
where it can be counted and shaped: exponential backoff with
full jitter, Retry-After honoured (seconds, HTTP date or retry-after-ms), retries on 429, 408,
409, 5xx, timeouts, dropped connections and undecodable replies. Every request ends as a
`ChatResult`, answered or failed with a short reason and a `failure` kind; a batch never raises
for one request.

Concurrency (see `ctxsynth.llm.concurrency`): each call starts at `max_concurrency`; the limit is
cut only when a large share of a window of replies are 429s (an overloaded server), not on each
429; it grows back with clean windows, which also close on time. An attempt slower than a few
times the observed p95 latency gives its slot back (it keeps waiting; at most `max_concurrency`
such attempts), and one slower than the observed p99 times eight (at least 5 s, at most
`timeout_s`) is abandoned and retried with a doubled deadline. When nothing else is queued and a
slot is free, an attempt slower than twice the p99 gets a hedge beside it, the same request sent
again; the first success wins. Hedging is on by default only for a server on this machine (a
provider bills the hedge too; `hedge: true` turns it on elsewhere, `hedge: false` off; the spend
limit counts hedges, ctxsynth.llm.budget). Requests are taken lazily from the
queue (at most three per slot alive), so memory and CPU per request do not grow with the batch.
While fewer than 32 replies were seen (so both thresholds are still `timeout_s`), an attempt re-reads
them every half second: a stall in the first wave is cut as soon as typical latencies are known.

CPU per request: the body is a plain dict and the reply is decoded with `json`, skipping the SDK's
typed request transform and response models; the aiohttp transport replaces httpx's pool, which
scans every connection on each request. With `direct: true` (opt-in) the body goes straight
through that transport's aiohttp session with the URL, headers and timeouts the SDK computed once
(`ctxsynth.llm.openai.direct`, which reads private SDK names and is verified on the SDK versions it
names), raising the SDK's own errors; an SDK or client where that could differ from the SDK's `post`
(another version, Azure, token providers, proxies, ...) uses `post`, said once in the log.

Truncation policy: a reply with finish_reason "length" is not `ok` (`failure` "truncated"). When
its usage shows it stopped short of the requested budget (completion_tokens < max_tokens: the cut
was not the budget's, e.g. a proxy or a server fault), it is retried like a transient fault, within
`max_retries`. When the budget was used up (or usage is missing) it is returned at once: the same
request would be cut again, and the caller decides (the synthesis stage re-samples with a new seed
and finally rejects the seed as `truncated`; evaluation scores the cut text).

The API key is read from the environment when `generate` is called and handed to the client
only; it is never logged, never part of `identity()` (hence never in the cache) and scrubbed from
error text. A local server without the variable set gets a placeholder key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from ctxsynth.errors import ConfigError, MissingAPIKeyError
from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, RequestQueue, ResultCallback, as_queue
from ctxsynth.llm.concurrency import (
    AttemptWatch,
    ConcurrencyController,
    LatencyTracker,
    backoff_delay,
)
from ctxsynth.llm.hedging import hedged
from ctxsynth.llm.openai.connection import PLACEHOLDER_KEY, http_client, is_local, url_credentials
from ctxsynth.llm.openai.direct import Send, chat_sender, sdk_sender
from ctxsynth.llm.openai.replies import (
    Failure,
    cut_short,
    error_failure,
    result_from_json,
    scrub,
    succeeded,
)

log = logging.getLogger(__name__)

# attempts a request makes against an endpoint that refuses connections and never answered this
# backend, before it fails (and counts for the circuit breaker): a dead server tripped the breaker
# only after every request's whole backoff, ~96 s at the defaults (issue 25)
NEVER_ANSWERED_TRIES = 2

# replies seen before the stall deadline and the hedge delay come from observed latencies (before:
# the timeout). 16, the tracker's recompute period, not its default 32: a shard of a 4-shard run of
# 150 seeds sees ~26 replies in its first round, and a cold tracker waited out every 30 s stall
WARM_AFTER = 16

@dataclass
class _Run:
    """State shared by the requests of one `stream` call."""

    controller: ConcurrencyController
    latency: LatencyTracker
    on_result: ResultCallback
    key: str
    send: Send  # one body out, the reply's bytes back (ctxsynth.llm.openai.direct)
    stopped: bool = False  # on_result raised: the call is ending
    drained: bool = False  # the request queue was empty at the last look: idle slots may hedge
    hedges: int = 0  # second attempts sent beside slow ones (ctxsynth.llm.hedging)


def _first(times: list[float]) -> float | None:
    return times[0] if times else None


class OpenAIBackend(Backend):
    """Chat completions from an OpenAI-compatible endpoint; see the module docstring.

    base_url: the endpoint up to /v1 (None: OPENAI_BASE_URL if set, as the client does, else
    api.openai.com); api_key_env: the variable holding the
    key; max_concurrency: requests in flight at most (the adaptive limit never exceeds it; each
    call starts there); timeout_s: the longest an attempt may take (the adaptive deadline is
    usually shorter, see the module docstring); max_retries: retries after the first attempt; backoff_base_s and
    backoff_max_s: the jittered exponential backoff; extra_body: fields merged into every request
    body (e.g. vLLM's top_k), part of the cache identity; max_tokens_field: the body field that
    carries the reply budget, "max_tokens" (most servers) or "max_completion_tokens" (OpenAI's
    reasoning models refuse max_tokens); hedge: at the tail of a call (nothing else queued, a slot
    free), send a second attempt beside one slower than twice the p99 latency (ctxsynth.llm.hedging);
    unset: on for a server on this machine, off elsewhere (a provider bills hedges); direct: post
    through the SDK transport's session (ctxsynth.llm.openai.direct, ~1 ms of CPU less per request)
    instead of the SDK's `post`.
    """

    name = "openai"
    key_env_var = "OPENAI_API_KEY"
    key_env_option = "api_key_env"
    hosted = True

    @classmethod
    def probe(cls, model: str, options: Mapping[str, Any], where: str, endpoint: str) -> str | None:
        """GET /models once (ctxsynth.llm.openai.probe): reachable, key accepted, model listed."""
        from ctxsynth.llm.openai.probe import probe_models  # the openai client loads only here

        key_var = str(options.get(cls.key_env_option or "", cls.key_env_var)) if cls.key_env_var else "OPENAI_API_KEY"
        return probe_models(model, options, where, endpoint, key_var)

    @classmethod
    def key_env(cls, options: Mapping[str, Any]) -> str | None:
        """No key for a local server (base_url, else OPENAI_BASE_URL, on this machine)."""
        base_url = options.get("base_url") or os.environ.get("OPENAI_BASE_URL")
        return None if is_local(base_url) else super().key_env(options)

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 6,
        backoff_base_s: float = 0.5,  # the SDK's own first retry delay
        backoff_max_s: float = 60.0,
        extra_body: dict[str, Any] | None = None,
        max_tokens_field: str = "max_tokens",
        hedge: bool | None = None,
        direct: bool = False,
    ) -> None:
        super().__init__(model)
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ConfigError("need max_concurrency >= 1, max_retries >= 0 and timeout_s > 0")
        if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(f"max_tokens_field must be 'max_tokens' or 'max_completion_tokens', not {max_tokens_field!r}")
        import openai  # noqa: F401 - fail early, at construction, if the client is missing

        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.extra_body = dict(extra_body or {})
        self.max_tokens_field = max_tokens_field
        # hedges are billed: on by default only where requests cost nothing (a server on this machine)
        self.hedge = is_local(base_url or os.environ.get("OPENAI_BASE_URL")) if hedge is None else hedge
        self.direct = direct
        self.concurrency_limit = float(max_concurrency)  # where the last call's adaptive limit ended
        # the endpoint's reply latencies, kept across calls: a small call (a regeneration round of one
        # request) knows the stall deadline and when to hedge from the replies before it, instead of
        # warming up from nothing and waiting out a whole stall (issue 25: sharded runs under stalls)
        self._latency: LatencyTracker | None = None
        self._answered = False  # whether the endpoint ever answered this backend (see NEVER_ANSWERED_TRIES)
        self._rng = random.Random()

    def identity(self) -> dict[str, Any]:
        """Backend, model and extra body fields. The base URL is left out on purpose: the same
        model behind another port or proxy gives the same answers, and URLs can carry credentials."""
        ident = super().identity()
        if self.extra_body:
            ident["extra_body"] = self.extra_body
        return ident

    def sampling_fields(self, request: ChatRequest) -> dict[str, Any]:
        """The body fields that carry a request's sampling parameters (seed only when set)."""
        p = request.params
        fields: dict[str, Any] = {"temperature": p.temperature, "top_p": p.top_p, self.max_tokens_field: p.max_tokens}
        if p.seed is not None:
            fields["seed"] = p.seed
        return fields

    def _base_url(self) -> str | None:
        """The endpoint the client will call: base_url, else OPENAI_BASE_URL (the client's fallback)."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        base_url = self._base_url()
        if is_local(base_url):
            return PLACEHOLDER_KEY
        host = urlsplit(base_url).hostname if base_url else "api.openai.com"
        raise MissingAPIKeyError(
            f"the openai backend needs an API key for {host}: set the environment variable "
            f"{self.api_key_env} (the key is read from the environment only)"
        )

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        results: list[ChatResult | None] = [None] * len(requests)

        def collect(i: int, result: ChatResult) -> None:
            results[i] = result
            if on_result is not None:
                on_result(i, result)

        if requests:
            self.stream(requests, collect)
        return [r if r is not None else ChatResult(None, None, error="no result", failure="error") for r in results]

    def stream(self, requests: Iterable[ChatRequest] | RequestQueue, on_result: ResultCallback) -> None:
        queue = as_queue(requests)
        key = self._api_key()
        coro = self._run(queue, on_result, key)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(coro)
            return
        with ThreadPoolExecutor(max_workers=1) as pool:  # called from inside a running loop
            pool.submit(asyncio.run, coro).result()

    async def _run(self, queue: RequestQueue, on_result: ResultCallback, key: str) -> None:
        """Take requests while fewer than three per slot are alive; each finished one wakes this loop."""
        import openai

        base_url, headers = url_credentials(self._base_url())
        client = openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout_s,
                                    http_client=http_client(), default_headers=headers)
        if self._latency is None:  # kept across calls: see __init__
            self._latency = LatencyTracker(self.timeout_s, min_samples=WARM_AFTER)
        run = _Run(ConcurrencyController(self.max_concurrency), self._latency, on_result, key,
                   await chat_sender(client) if self.direct else sdk_sender(client))
        alive: set[asyncio.Task[ChatResult]] = set()
        finished = asyncio.Event()
        counts = {"requests": 0, "failed": 0, "retries": 0}

        errors: list[BaseException] = []

        def done(task: asyncio.Task[ChatResult]) -> None:
            alive.discard(task)
            finished.set()
            if task.cancelled():
                return
            if (error := task.exception()) is not None:
                errors.append(error)
                return
            result = task.result()
            counts["failed"] += not result.ok
            counts["retries"] += result.attempts - 1

        try:
            while True:
                while len(alive) < 3 * self.max_concurrency:
                    item = queue.take()
                    run.drained = item is None
                    if item is None:
                        break
                    task = asyncio.create_task(self._one(run, item[0], item[1]))
                    alive.add(task)
                    task.add_done_callback(done)
                    counts["requests"] += 1
                if not alive:
                    break
                finished.clear()
                await finished.wait()
                if errors:
                    raise errors[0]  # from on_result: stops the call
        finally:
            for task in alive:
                task.cancel()
            await asyncio.gather(*alive, return_exceptions=True)
            self.concurrency_limit = run.controller.limit
            await client.close()
        log.info("openai %s: %d requests, %d not ok, %d retries, %d hedges, %d concurrency cuts", self.model,
                 counts["requests"], counts["failed"], counts["retries"], run.hedges, run.controller.cuts)

    async def _one(self, run: _Run, i: int, request: ChatRequest) -> ChatResult:
        attempt, timeouts, hedges = 0, 0, 0
        while True:
            attempt += 1
            if self.hedge:
                clock: list[float] = []  # when the first attempt got its slot
                outcome, hedge = await hedged(partial(self._slotted, run, request, timeouts, clock),
                                              run.latency.hedge_after, lambda: run.drained and run.controller.idle(),
                                              succeeded, partial(_first, clock))
                run.hedges += hedge
                hedges += hedge
            else:
                outcome = await self._slotted(run, request, timeouts)
            if isinstance(outcome, ChatResult):
                self._answered = True
                if outcome.ok or not cut_short(outcome, request) or attempt > self.max_retries:
                    outcome.attempts = attempt
                    break
                outcome = Failure("truncated", retryable=True, kind="truncated")
            if outcome.reason == "connection_error" and not self._answered and attempt >= NEVER_ANSWERED_TRIES:
                # an endpoint that refuses connections and never answered this backend is down, not
                # busy: the breaker hears of it in seconds, not after every request's full backoff
                outcome = dataclasses.replace(outcome, retryable=False)
            if not outcome.retryable or attempt > self.max_retries:
                reason = outcome.reason + ("_exhausted" if outcome.reason.startswith("http_") and outcome.retryable else "")
                outcome = ChatResult(None, None, error=reason, attempts=attempt, failure=outcome.kind)
                log.warning("openai request %d failed after %d attempt(s): %s", i, attempt, reason)
                break
            timeouts += outcome.reason == "timeout"
            delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, outcome.retry_after, self._rng)
            if self.hedge and not outcome.rate_limited and outcome.retry_after is None and run.drained \
                    and run.controller.idle():
                # the tail of a call (nothing waits to be sent, a slot is free) on a server where requests
                # cost nothing: a growing backoff protects nobody and idles every slot (issue 25, point 6)
                delay = min(delay, self.backoff_base_s)
            log.debug("openai request %d: %s, retry %d in %.2fs", i, outcome.reason, attempt, delay)
            await asyncio.sleep(delay)
        outcome.hedges = hedges  # the spend limit counts them (ctxsynth.llm.budget)
        try:
            run.on_result(i, outcome)
        except BaseException:
            run.stopped = True  # the call stops: no attempt may start from here on
            raise
        return outcome

    async def _slotted(self, run: _Run, request: ChatRequest, timeouts: int,
                       clock: list[float] | None = None) -> ChatResult | Failure:
        """One attempt inside a slot; the slot is given back early if the attempt stalls. `clock`
        gets the time the slot was granted appended."""
        ctl = run.controller
        await ctl.acquire()
        if run.stopped:  # a callback raised while this one waited for its slot
            ctl.release()
            raise asyncio.CancelledError
        watch = AttemptWatch(ctl, run.latency, timeouts)
        if clock is not None:
            clock.append(watch.started)
        try:
            outcome = await self._attempt(run, request, watch)
            refused = isinstance(outcome, Failure) and outcome.rate_limited
            if refused and watch.held:  # a refusal holds its slot as long as an answer would: see concurrency.py
                await asyncio.sleep(max(0.0, run.latency.typical - (time.monotonic() - watch.started)))
        finally:
            watch.end()
        if isinstance(outcome, ChatResult):
            run.latency.observe(time.monotonic() - watch.started)
            ctl.min_window_s = run.latency.typical
        ctl.record(watch.started, rate_limited=refused)
        return outcome

    async def _attempt(self, run: _Run, request: ChatRequest, watch: AttemptWatch) -> ChatResult | Failure:
        """One HTTP attempt with a plain JSON body and reply (`run.send`: see ctxsynth.llm.openai.direct);
        its errors are the SDK's, mapped to a Failure by ctxsynth.llm.openai.replies.error_failure."""
        body: dict[str, Any] = {"model": self.model, "messages": list(request.messages), **self.sampling_fields(request),
                                **self.extra_body}
        try:
            try:
                async with asyncio.timeout(None) as timeout:  # no extra task per attempt, unlike wait_for
                    watch.start(timeout)
                    raw = await run.send(body)
            except ValueError as exc:  # the HTTP library refused to send it: ours to fix, not the server's
                return Failure(scrub(f"client_error: {type(exc).__name__}: {exc}", run.key)[:500], retryable=False,
                               kind="error")
            finally:
                watch.stop()
            return result_from_json(json.loads(raw))
        except Exception as exc:  # timeouts, the SDK's errors, undecodable replies: one odd request never sinks a batch
            return error_failure(exc, run.key)
