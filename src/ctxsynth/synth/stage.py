"""The synthesize stage for one shard: generate, verify, regenerate failures with a new seed.

All first attempts of a shard go to the backend as one batch (the openai backend runs them
concurrently, the transformers backend batches them), then the failures as the next batch, up to
`max_attempts`. Every attempt is recorded on the output record, pass or fail.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from ctxsynth.llm.base import Backend, ChatRequest, SamplingParams
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import Attempt, Rejected, Seed, Synthesized, to_dict
from ctxsynth.rng import derive_seed
from ctxsynth.synth.tasks import ContextSynthesis, ParseError
from ctxsynth.verify.checks import VerifyConfig, verify_context

log = logging.getLogger(__name__)


@dataclass
class SynthConfig:
    task: str = "context"  # synthesis task (registry name)
    target_words: int = 2000  # the paper's N
    genre: str = "auto"  # auto = by seed task (synth/prompts/genres.yaml), or a genre name
    prompt_file: str | None = None  # your own prompt file ([system]/[user] sections)
    max_attempts: int = 3  # generations per seed before it is rejected


@dataclass
class ShardResult:
    kept: list[Synthesized]
    rejected: list[Rejected]
    stats: dict[str, Any]


def _attempt(result: Any, attempt: int, seed_value: int, task: ContextSynthesis, seed: Seed,
             target_words: int, verify: VerifyConfig) -> tuple[Attempt, str | None]:
    parsed, parse_error = None, None
    if result.ok and result.finish_reason != "length":
        try:
            parsed = task.parse(result.text)
        except ParseError as e:
            parse_error = str(e)
    reason, verdicts = verify_context(
        parsed, result.finish_reason, seed.answers, target_words, verify, error=result.error, parse_error=parse_error
    )
    record = Attempt(
        attempt=attempt, sampling_seed=seed_value, text=result.text, finish_reason=result.finish_reason,
        usage=dict(result.usage), error=result.error, verdicts=verdicts, reason=reason,
    )
    return record, parsed


def synthesize_shard(
    seeds: list[Seed], task: ContextSynthesis, backend: Backend, sampling: SamplingParams, config: SynthConfig,
    verify: VerifyConfig, run_seed: int, progress: Progress | None = None,
) -> ShardResult:
    progress = progress or NullProgress()
    started = time.perf_counter()
    attempts: dict[str, list[Attempt]] = {s.id: [] for s in seeds}
    passed: dict[str, str] = {}
    pending = list(seeds)
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests_sent": 0, "requests_cached": 0}
    for attempt in range(1, config.max_attempts + 1):
        if not pending:
            break
        if attempt > 1:
            progress.add_total(len(pending))
        seeds_used = [derive_seed(run_seed, "synthesize", s.id, attempt) for s in pending]
        requests = [
            ChatRequest(task.prompt(s), replace(sampling, seed=v), id=s.id) for s, v in zip(pending, seeds_used, strict=True)
        ]
        results = backend.generate(requests, on_result=lambda i, r: progress.advance())
        still = []
        for seed, seed_value, result in zip(pending, seeds_used, results, strict=True):
            usage["requests_cached" if result.cached else "requests_sent"] += 1
            for key in ("prompt_tokens", "completion_tokens"):
                usage[key] += int(result.usage.get(key, 0))
            record, parsed = _attempt(result, attempt, seed_value, task, seed, config.target_words, verify)
            attempts[seed.id].append(record)
            if record.reason is None and parsed is not None:
                passed[seed.id] = parsed
            else:
                still.append(seed)
        pending = still
    return _collect(seeds, attempts, passed, task, backend, sampling, config, usage, time.perf_counter() - started)


def _collect(seeds: list[Seed], attempts: dict[str, list[Attempt]], passed: dict[str, str], task: ContextSynthesis,
             backend: Backend, sampling: SamplingParams, config: SynthConfig, usage: dict[str, int],
             seconds: float) -> ShardResult:
    kept, rejected = [], []
    stats: dict[str, Any] = {"n_in": len(seeds), "n_out": 0, "seconds": round(seconds, 3), "usage": usage}
    for seed in seeds:
        tries = attempts[seed.id]
        final = tries[-1]
        provenance = {
            "task": task.name, "backend": backend.name, "model": backend.model,
            "prompt_sha256": task.template.sha256, "sampling": {**sampling.to_dict(), "seed": final.sampling_seed},
            "target_words": config.target_words, "finish_reason": final.finish_reason,
            "usage": {k: sum(int(a.usage.get(k, 0)) for a in tries) for k in ("prompt_tokens", "completion_tokens")},
            "attempts": len(tries),
        }
        if seed.id in passed:
            kept.append(Synthesized(seed.id, seed.task, seed, passed[seed.id], provenance, final.verdicts, tries))
            stats["n_out"] += 1
        else:
            reason = final.reason or "unknown"
            detail = f"{len(tries)} attempt(s) failed; last: {reason}"
            record = {"seed": to_dict(seed), "provenance": provenance, "attempts": [to_dict(a) for a in tries]}
            rejected.append(Rejected(seed.id, "synthesize", reason, detail, record))
            stats[f"dropped_{reason}"] = stats.get(f"dropped_{reason}", 0) + 1
    return ShardResult(kept, rejected, stats)
