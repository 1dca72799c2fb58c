"""The synthesize stage: its body (driver) and its per-shard work, as it runs in a worker (the
contract: ctxsynth.pipeline.contract; the per-seed logic: ctxsynth.synth.stage).

The backend is built inside the worker (one per process, reused by its shards) behind the request
cache, which every worker shares: one SQLite file in WAL mode, each answer committed on arrival.
API limits hold across workers: a backend with a `max_concurrency` option gets the share
`max_concurrency // parallel` in each worker, and at most `max_concurrency` shards run at once, so
the requests in flight over all workers never exceed the configured limit. A spend limit
(`llm.max_cost_usd`) keeps one ledger file, so with it the shards run one at a time.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxsynth.io import read_jsonl, shard_files, shard_name
from ctxsynth.llm.base import Backend
from ctxsynth.llm.budget import LEDGER, BudgetedBackend, model_price
from ctxsynth.llm.spec import ModelSpec
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.contract import ShardOutput, ShardWork, run_sharded
from ctxsynth.pipeline.executors import share_of_limit, worker_resource
from ctxsynth.pipeline.run import Run
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import seed_from_dict
from ctxsynth.synth.stage import synthesize_shard, synthesized_to_dict
from ctxsynth.synth.tasks import build_task, needs_llm

log = logging.getLogger(__name__)
DEFAULT_CHUNK = 16  # requests per spend check for a backend without a concurrency limit


def model_specs(config: RunConfig) -> dict[str, ModelSpec]:
    """The chat model the stage asks, by config key (the stage table's `models`): the human task asks none."""
    return {"llm": config.llm} if config.synth.task != "human" else {}


def synthesis_backend(run: Run, max_concurrency: int | None = None) -> Backend:
    """llm: behind the breaker and the request cache; with `llm.max_cost_usd`, behind a spend limit
    kept across resumes (ctxsynth.llm.budget). `max_concurrency` replaces the option of that name (a
    worker's share of the limit)."""
    llm = run.config.llm
    if max_concurrency is not None:
        llm = dataclasses.replace(llm, options={**llm.options, "max_concurrency": max_concurrency})
    backend = llm.build(run.dir / "cache.sqlite", run.config.max_consecutive_failures)
    if llm.max_cost_usd is None:
        return backend
    price = model_price(run.config.report.prices, llm.model)
    return BudgetedBackend(backend, llm.max_cost_usd, price, run.state / LEDGER,
                           chunk=llm.concurrency() or DEFAULT_CHUNK)


@dataclass(frozen=True)
class SynthesizeShard(ShardWork):
    source: str  # the input stage's folder
    parallel: int = 1  # shards running at once (the driver loop sets it through `for_parallel`)

    def for_parallel(self, parallel: int) -> SynthesizeShard:
        return dataclasses.replace(self, parallel=parallel)

    def max_parallel(self, run: Run, workers: int) -> int:
        if run.config.llm.max_cost_usd is not None:
            return 1
        limit = run.config.llm.concurrency()
        return workers if limit is None else max(1, min(workers, limit))

    def run_shard(self, run: Run, index: int, progress: Progress) -> ShardOutput:
        c = run.config
        limit = c.llm.concurrency()
        share = None if limit is None or self.parallel <= 1 else share_of_limit(limit, self.parallel)
        task = worker_resource("synthesize.task", lambda: build_task(c.synth, c.seed))
        # synth.task=human turns seeds with their real context into records: no model, no backend
        backend = (worker_resource("synthesize.backend", lambda: synthesis_backend(run, share))
                   if needs_llm(task) else None)
        seeds = [seed_from_dict(d) for d in read_jsonl(Path(self.source) / shard_name(index))]
        result = synthesize_shard(seeds, task, backend, c.llm.sampling(), c.synth, c.verify, c.seed, progress)
        return ShardOutput([synthesized_to_dict(r) for r in result.kept], list(result.rejected), result.stats)


def run_synthesize(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    """Write and verify a context for every seed of the input stage, shard by shard in the workers."""
    progress = progress or NullProgress()
    source = run.input_dir("synthesize")
    n_shards = len(shard_files(source))
    markers = run.markers("synthesize")
    counts = run.input_counts("synthesize")
    progress.start("synthesize", sum(n for i, n in enumerate(counts) if not markers.shard_done(i)))
    try:
        return run_sharded(run, "synthesize", n_shards, SynthesizeShard(str(source)), progress)
    finally:
        progress.finish()
