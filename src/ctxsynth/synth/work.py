"""The synthesize stage's per-shard work, as it runs in a worker (the contract: ctxsynth.executors).

The backend is built inside the worker (one per process, reused by its shards) behind the request
cache, which every worker shares: one SQLite file in WAL mode, each answer committed on arrival.
API limits hold across workers: a backend with a `max_concurrency` option gets the share
`max_concurrency // parallel` in each worker, and at most `max_concurrency` shards run at once, so
the requests in flight over all workers never exceed the configured limit. A spend limit
(`llm.max_cost_usd`) keeps one ledger file, so with it the shards run one at a time.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ctxsynth.executors import share_of_limit, worker_resource
from ctxsynth.io import read_jsonl, shard_name
from ctxsynth.progress import Progress
from ctxsynth.records import seed_from_dict
from ctxsynth.stages import ShardOutput, ShardWork

if TYPE_CHECKING:
    from ctxsynth.llm.spec import ModelSpec
    from ctxsynth.runner import Run

log = logging.getLogger(__name__)


def concurrency_limit(spec: ModelSpec) -> int | None:
    """The backend's `max_concurrency` (the configured option, else its default), or None when it has none."""
    params = inspect.signature(spec.backend_class().__init__).parameters
    if "max_concurrency" not in params:
        return None
    return int(spec.options.get("max_concurrency", params["max_concurrency"].default))


@dataclass(frozen=True)
class SynthesizeShard(ShardWork):
    source: str  # the input stage's folder
    parallel: int = 1  # shards running at once (the driver loop sets it through `for_parallel`)

    def for_parallel(self, parallel: int) -> SynthesizeShard:
        return dataclasses.replace(self, parallel=parallel)

    def max_parallel(self, run: Run, workers: int) -> int:
        if run.config.llm.max_cost_usd is not None:
            return 1
        limit = concurrency_limit(run.config.llm)
        return workers if limit is None else max(1, min(workers, limit))

    def run_shard(self, run: Run, index: int, progress: Progress) -> ShardOutput:
        from ctxsynth.stages import synthesis_backend
        from ctxsynth.synth.stage import synthesize_shard, synthesized_to_dict
        from ctxsynth.synth.tasks import build_task

        c = run.config
        limit = concurrency_limit(c.llm)
        share = None if limit is None or self.parallel <= 1 else share_of_limit(limit, self.parallel)
        task = worker_resource("synthesize.task", lambda: build_task(c.synth, c.seed))
        # synth.task=human turns seeds with their real context into records: no model, no backend
        backend = (worker_resource("synthesize.backend", lambda: synthesis_backend(run, share))
                   if getattr(task, "needs_llm", True) else None)
        seeds = [seed_from_dict(d) for d in read_jsonl(Path(self.source) / shard_name(index))]
        result = synthesize_shard(seeds, task, backend, c.llm.sampling(), c.synth, c.verify, c.seed, progress)
        return ShardOutput([synthesized_to_dict(r) for r in result.kept], list(result.rejected), result.stats)
