"""The synthesize stage for one shard: generate, verify, regenerate failures with a new seed.

The shard's first attempts are streamed to the backend (`Backend.stream`), and each result is
checked as it arrives; a failed attempt queues the seed's next one (a new sampling seed) at once,
up to `max_attempts`, so regenerations overlap with first attempts instead of waiting for the
whole shard (the openai backend keeps its slots full; batch backends such as transformers still
see rounds: everything queued at once). Every attempt is recorded on the output record, pass or
fail; the output does not depend on the order results arrive in. The checks every task
shares (request failed, truncated, parse failure) run here; the task's own `verify` runs after them,
and its `build` turns the kept fields into the output record.

An answer no string check can support (yes / no / unanswerable, or not a span of the document:
`supported: None` from ctxsynth.verify.checks) waits for the support judge: once the stream is
drained, the waiting attempts are judged in one batch (by `judge`, default the synthesis backend),
and those the judge rejects are regenerated like any failure, until none waits.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from typing import Any

from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, RequestQueue, SamplingParams
from ctxsynth.llm.failures import is_infrastructure, unanswered_error
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import Attempt, Rejected, Seed, Synthesized, to_dict
from ctxsynth.rng import derive_seed
from ctxsynth.synth.config import SynthConfig
from ctxsynth.synth.tasks import ParseError, SynthesisTask, needs_llm
from ctxsynth.verify.checks import VerifyConfig
from ctxsynth.verify.judge import SupportJudge, needs_judge

log = logging.getLogger(__name__)

__all__ = ["ShardResult", "SynthConfig", "synthesize_shard", "synthesized_to_dict"]


@dataclass
class ShardResult:
    kept: list[Synthesized]
    rejected: list[Rejected]
    stats: dict[str, Any]


def synthesized_to_dict(record: Synthesized) -> dict[str, Any]:
    """The record as written to synth/; `documents` only when there are some, so single-document
    records keep the exact bytes they had before the field existed."""
    data = to_dict(record)
    if not data.get("documents"):
        data.pop("documents", None)
    return data


def gate(result: ChatResult, parsed: Any, parse_error: str | None) -> tuple[str | None, dict[str, Any]] | None:
    """The shared checks: (reason, verdicts) when the reply cannot be used, else None."""
    if result.error is not None:
        return "request_failed", {"error": result.error}
    verdicts: dict[str, Any] = {"finish_reason": result.finish_reason}
    if result.finish_reason == "length":
        return "truncated", verdicts
    if parse_error is not None or parsed is None:
        verdicts["parse_error"] = parse_error
        return "parse_failure", verdicts
    return None


def _attempt(result: ChatResult, attempt: int, seed_value: int, task: SynthesisTask, seed: Seed,
             verify: VerifyConfig) -> tuple[Attempt, Any]:
    parsed, parse_error = None, None
    if result.ok and result.finish_reason != "length":
        try:
            parsed = task.parse(result.text or "")
        except ParseError as e:
            parse_error = str(e)
    failed = gate(result, parsed, parse_error)
    reason, verdicts = failed if failed is not None else task.verify(seed, parsed, result.finish_reason, verify)
    record = Attempt(
        attempt=attempt, sampling_seed=seed_value, text=result.text, finish_reason=result.finish_reason,
        usage=dict(result.usage), error=result.error, verdicts=verdicts, reason=reason,
    )
    return record, parsed


class _AttemptQueue(RequestQueue):
    """The shard's requests, built when the backend takes them: queued retries first, then the next
    seed's first attempt. Remembers (seed, attempt, sampling seed) per index while in flight."""

    def __init__(self, seeds: list[Seed], task: SynthesisTask, sampling: SamplingParams, run_seed: int) -> None:
        super().__init__()
        self._first = iter(seeds)
        self._retries: deque[tuple[Seed, int]] = deque()
        self.task, self.sampling, self.run_seed = task, sampling, run_seed
        self.in_flight: dict[int, tuple[Seed, int, int]] = {}

    def retry(self, seed: Seed, attempt: int) -> None:
        self._retries.append((seed, attempt))

    def take(self) -> tuple[int, ChatRequest] | None:
        if self._retries:
            seed, attempt = self._retries.popleft()
        elif (seed := next(self._first, None)) is not None:  # type: ignore[assignment]
            attempt = 1
        else:
            return None
        value = derive_seed(self.run_seed, "synthesize", seed.id, attempt)
        index, self.taken = self.taken, self.taken + 1
        self.in_flight[index] = (seed, attempt, value)
        return index, ChatRequest(self.task.prompt(seed), replace(self.sampling, seed=value), id=seed.id)


def synthesize_shard(
    seeds: list[Seed], task: SynthesisTask, backend: Backend | None, sampling: SamplingParams, config: SynthConfig,
    verify: VerifyConfig, run_seed: int, progress: Progress | None = None, judge: Backend | None = None,
) -> ShardResult:
    """Synthesize and verify one shard. `judge` answers the support judge's requests (default: `backend`)."""
    progress = progress or NullProgress()
    if not needs_llm(task):  # the human-context arm: records without a model call
        from ctxsynth.synth.human import HumanContexts, human_shard

        assert isinstance(task, HumanContexts)
        kept, rejected, stats = human_shard(seeds, task)
        progress.advance(len(seeds))
        return ShardResult(kept, rejected, stats)
    started = time.perf_counter()
    unusable = {s.id: reason for s in seeds if (reason := task.unusable(s)) is not None}
    attempts: dict[str, list[Attempt]] = {s.id: [] for s in seeds}
    passed: dict[str, Any] = {}
    if unusable:
        progress.advance(len(unusable))
    # http_attempts: what reached the server for the requests sent (retries and hedges included)
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests_sent": 0, "requests_cached": 0, "http_attempts": 0}
    unanswered: list[ChatResult] = []
    queue = _AttemptQueue([s for s in seeds if s.id not in unusable], task, sampling, run_seed)
    waiting: dict[str, tuple[Seed, Attempt, Any]] = {}  # seed id -> attempt waiting for the judge

    def on_result(index: int, result: ChatResult) -> None:
        seed, attempt, seed_value = queue.in_flight.pop(index)
        progress.advance()
        if is_infrastructure(result):  # not this seed's fault: never an attempt, never final
            unanswered.append(result)
            return
        usage["requests_cached" if result.cached else "requests_sent"] += 1
        usage["http_attempts"] += 0 if result.cached else result.attempts + result.hedges
        for key in ("prompt_tokens", "completion_tokens"):
            usage[key] += int(result.usage.get(key, 0))
        record, parsed = _attempt(result, attempt, seed_value, task, seed, verify)
        attempts[seed.id].append(record)
        if record.reason is None and parsed is not None and needs_judge(record.verdicts):
            waiting[seed.id] = (seed, record, parsed)
        elif record.reason is None and parsed is not None:
            passed[seed.id] = (parsed, record.verdicts)
        elif attempt < config.max_attempts:
            progress.add_total(1)
            queue.retry(seed, attempt + 1)

    assert backend is not None, f"task {task.name!r} needs a backend"
    backend.stream(queue, on_result)
    if unanswered:
        raise unanswered_error(unanswered, backend)
    judged = Counter[str]()
    while waiting:
        retries = _judge_round(waiting, SupportJudge(verify, run_seed), judge or backend, task, progress, judged)
        for seed, record, parsed in retries:
            if record.reason is None:
                passed[seed.id] = (parsed, record.verdicts)
            elif record.attempt < config.max_attempts:
                progress.add_total(1)
                queue.retry(seed, record.attempt + 1)
        backend.stream(queue, on_result)
        if unanswered:
            raise unanswered_error(unanswered, backend)
    shard = _collect(seeds, attempts, passed, task, backend, sampling, config, usage, time.perf_counter() - started)
    shard.stats.update({f"judge_{k}": n for k, n in sorted(judged.items())})
    for seed in seeds:
        if seed.id in unusable:
            _reject_unusable(shard, seed, unusable[seed.id], task)
    return shard


def _judge_round(waiting: dict[str, tuple[Seed, Attempt, Any]], judge: SupportJudge, backend: Backend,
                 task: SynthesisTask, progress: Progress, judged: Counter[str]) -> list[tuple[Seed, Attempt, Any]]:
    """Judge every waiting attempt in one batch; each gets its final support verdict and, when the
    judge says no, its task's reason. Returns them all (the caller passes or regenerates each)."""
    items = list(waiting.values())
    waiting.clear()
    requests = []
    for seed, record, parsed in items:
        built = task.build(seed, parsed, {}, record.verdicts, [])  # the record as it would be kept
        requests.append(judge.request(seed.id, record.attempt, built.context or "", built.seed.instruction,
                                      built.seed.answers[0]))
    progress.add_total(len(requests))
    results = backend.generate(requests)
    progress.advance(len(requests))
    failed = [r for r in results if is_infrastructure(r)]
    if failed:
        raise unanswered_error(failed, backend)
    for (_, record, _), result in zip(items, results, strict=True):
        support = judge.resolve(record.verdicts["support"], result)
        record.verdicts["support"] = support
        judged["supported" if support["supported"] else "unsupported"] += 1
        if not support["supported"]:
            record.reason = support["judge_reason"]
    return items


def _provenance(task: SynthesisTask, backend: Backend, sampling: SamplingParams, config: SynthConfig,
                tries: list[Attempt]) -> dict[str, Any]:
    final = tries[-1]
    return {
        "task": task.name, "backend": backend.name, "model": backend.model,
        "prompt_sha256": task.template.sha256, "sampling": {**sampling.to_dict(), "seed": final.sampling_seed},
        "target_words": config.target_words, "finish_reason": final.finish_reason,
        "usage": {k: sum(int(a.usage.get(k, 0)) for a in tries) for k in ("prompt_tokens", "completion_tokens")},
        "attempts": len(tries),
    }


def _collect(seeds: list[Seed], attempts: dict[str, list[Attempt]], passed: dict[str, Any], task: SynthesisTask,
             backend: Backend, sampling: SamplingParams, config: SynthConfig, usage: dict[str, int],
             seconds: float) -> ShardResult:
    kept, rejected = [], []
    stats: dict[str, Any] = {"n_in": len(seeds), "n_out": 0, "seconds": round(seconds, 3), "usage": usage}
    for seed in seeds:
        tries = attempts[seed.id]
        if not tries:
            continue  # unusable seeds are rejected by the caller
        provenance = _provenance(task, backend, sampling, config, tries)
        if seed.id in passed:
            fields, verdicts = passed[seed.id]
            kept.append(task.build(seed, fields, provenance, verdicts, tries))
            stats["n_out"] += 1
        else:
            reason = tries[-1].reason or "unknown"
            detail = f"{len(tries)} attempt(s) failed; last: {reason}"
            record = {"seed": to_dict(seed), "provenance": provenance, "attempts": [to_dict(a) for a in tries]}
            rejected.append(Rejected(seed.id, "synthesize", reason, detail, record))
            stats[f"dropped_{reason}"] = stats.get(f"dropped_{reason}", 0) + 1
    return ShardResult(kept, rejected, stats)


def _reject_unusable(shard: ShardResult, seed: Seed, reason: str, task: SynthesisTask) -> None:
    """A seed the task cannot use at all (no document, ...): rejected without a request."""
    detail = f"task {task.name!r} cannot use this seed: {reason}"
    shard.rejected.append(Rejected(seed.id, "synthesize", reason, detail, {"seed": to_dict(seed)}))
    shard.stats[f"dropped_{reason}"] = shard.stats.get(f"dropped_{reason}", 0) + 1
