"""The contract every sharded stage follows: `ShardWork` in, `ShardOutput` out, `run_sharded` drives.

`run_sharded` owns the loop every sharded stage shares: skip finished shards, hand the others to
the run's executor (ctxsynth.pipeline.shard_loop), where each is worked on, written atomically
(kept and rejected records) and marked with its counts; then merge the counts into the stage's DONE
marker. A rerun skips finished work; the request cache makes a half-finished shard cheap to redo.
This module imports no stage: stage bodies import it.

The contract a stage body follows:

1. Driver-side pass. The stage body runs in the driver and does whatever needs every record at
   once (dedup, the assembly pool, counting the seeds), writing what the shards need to disk under
   the run directory (an index, a spill file), never keeping it in memory for the workers.
2. Per-shard work. It then hands `run_sharded` a `ShardWork`: a small picklable object (a frozen
   dataclass of paths, numbers and config pieces; never records, open files or backends) whose
   `run_shard(run, index, progress)` returns the shard's `ShardOutput`. A worker rebuilds the `Run`
   from its config, calls `run_shard`, writes the kept and rejected records atomically and marks the
   shard complete itself, then returns only the shard's stats to the driver, which merges them into
   the stage's DONE marker.
3. Resources. Backends, tokenizers and models are built inside the worker, through
   `worker_resource(key, factory)` (ctxsynth.pipeline.executors): one per process and key, reused
   by every shard that process runs, closed when the stage ends (serial) or when the worker exits.

A plain function `work(i)` (a closure over the driver's memory) is still accepted by `run_sharded`
and runs in the driver, serially, whatever the executor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxsynth.io import file_entry, shard_name, write_jsonl
from ctxsynth.pipeline.executors import enter_session
from ctxsynth.pipeline.run import Run
from ctxsynth.pipeline.shard_loop import run_shards
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import Rejected, to_dict


@dataclass
class ShardOutput:
    """What a stage made of one shard: kept records (as dicts), rejections (None: no rejected file), stats."""

    kept: list[dict[str, Any]]
    rejected: list[Rejected] | None
    stats: dict[str, Any] = field(default_factory=dict)


class ShardWork(ABC):
    """A stage's per-shard work that can run in another process (see the module docstring).

    Subclasses are small picklable (frozen) dataclasses; `run_shard` is called in a worker with a
    `Run` rebuilt from the config, builds its resources through `executors.worker_resource`, and
    returns the shard's output; the worker writes and marks it."""

    @abstractmethod
    def run_shard(self, run: Run, index: int, progress: Progress) -> ShardOutput:
        """The shard's records (and rejections): what the worker writes and marks."""

    def max_parallel(self, run: Run, workers: int) -> int:
        """How many shards may run at once (an API limit shared by the workers may lower it)."""
        return workers

    def for_parallel(self, parallel: int) -> ShardWork:
        """This work, told how many shards will run at once (to split a shared limit); default: itself."""
        return self


def write_shard(run: Run, stage: str, index: int, shard: ShardOutput) -> dict[str, Any]:
    """Write a shard's kept and rejected records atomically, then its marker; return its counts.

    Counts: n_out (kept), dropped_<reason> (rejected) and n_in (their sum), overridden or extended
    by the shard's own stats; `files`: each file written, with its size and record count, which a
    later stage verifies before it reads them (Markers.verify)."""
    out = run.stage_dir(stage)
    kept = out / shard_name(index)
    write_jsonl(kept, shard.kept)
    files = [file_entry(out, kept, len(shard.kept))]
    rejected = shard.rejected or []
    if shard.rejected is not None:
        write_jsonl(out / "rejected" / shard_name(index), (to_dict(r) for r in rejected))
        files.append(file_entry(out, out / "rejected" / shard_name(index), len(rejected)))
    stats: dict[str, Any] = {"n_in": len(shard.kept) + len(rejected), "n_out": len(shard.kept)}
    for r in rejected:
        stats[f"dropped_{r.reason}"] = stats.get(f"dropped_{r.reason}", 0) + 1
    stats.update(shard.stats)
    stats["files"] = files
    run.markers(stage).mark_shard(index, stats)
    return stats


def execute_shard(config: Any, base_dir: str, stage: str, work: ShardWork, index: int, session: str,
                  progress: Progress | None = None) -> dict[str, Any]:
    """One shard in whichever process the executor chose: rebuild the run, work, write, mark."""
    enter_session(session)
    run = Run(config, Path(base_dir))
    shard = work.run_shard(run, index, progress or NullProgress())
    return write_shard(run, stage, index, shard)


def run_sharded(run: Run, stage: str, n_shards: int, work: ShardWork | Callable[[int], ShardOutput],
                progress: Progress | None = None) -> dict[str, Any]:
    """Run every unfinished shard; each is written and marked as it finishes; mark and return the stage.

    A `ShardWork` goes to the run's executor (workers); a plain `work(i)` runs here, one shard after another."""
    markers = run.markers(stage)
    todo = [i for i in range(n_shards) if not markers.shard_done(i)]
    if isinstance(work, ShardWork):
        run_shards(run, stage, todo, work, progress or NullProgress(), execute_shard)
    else:
        for i in todo:
            write_shard(run, stage, i, work(i))
    summary = merge_stats(markers.shard_stats())
    markers.mark_stage(summary)
    return summary


def merge_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the numbers (and the numbers of nested mappings) of every shard's stats."""
    total: dict[str, Any] = {}
    for s in stats:
        for key, value in s.items():
            if isinstance(value, dict):
                sub = total.setdefault(key, {})
                for k, v in value.items():
                    sub[k] = sub.get(k, 0) + v
            elif isinstance(value, (int, float)):
                total[key] = total.get(key, 0) + value
    return total
