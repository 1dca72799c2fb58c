"""The assemble stage's body: gold context + distractors -> samples at the configured token budget.

The pool of every kept context is built once on disk (streaming, ctxsynth.assemble.pool), then each
shard is assembled against it in the executor's workers (ctxsynth.assemble.shards): memory holds one
shard and the pool documents it reads, never the whole pool.
"""

from __future__ import annotations

from typing import Any

from ctxsynth.assemble.shards import POOL_FILE, AssembleShard, ensure_pool, release_assembler
from ctxsynth.io import shard_files
from ctxsynth.pipeline.contract import run_sharded
from ctxsynth.pipeline.run import Run
from ctxsynth.progress import NullProgress, Progress


def run_assemble(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    progress = progress or NullProgress()
    markers = run.markers("assemble")
    files = shard_files(run.input_dir("assemble"))
    todo = [i for i in range(len(files)) if not markers.shard_done(i)]
    pool_path = markers.dir / POOL_FILE
    if todo:
        ensure_pool(files, run.config.assemble, pool_path, run.executor() if len(files) > 1 else None)
    counts = run.input_counts("assemble")
    progress.start("assemble", sum(n for i, n in enumerate(counts) if i in todo))
    work = AssembleShard(run.config.assemble, run.config.seed, tuple(map(str, files)), str(pool_path))
    try:
        return run_sharded(run, "assemble", len(files), work, progress)  # in the executor's workers
    finally:
        release_assembler()
        progress.finish()
