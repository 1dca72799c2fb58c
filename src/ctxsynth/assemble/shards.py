"""The assemble stage's work, split for bounded memory and for other processes.

`ensure_pool` is the one global pass: it streams the synthesize stage's shards into the disk pool
(ctxsynth.assemble.pool) once, in the driver, before any shard is assembled; a rerun reuses the
finished file. Tokenizing is per input shard (`index_part`, picklable arguments, so an executor
can run the parts in parallel); only the merge, an SQLite sort, must see every part. `AssembleShard` then assembles one input shard: it pickles as its settings and
paths, and builds its Assembler over the pool file lazily in the process that runs it, so a
worker's memory is one shard plus the pool documents it reads.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxsynth.assemble.assembler import Assembler
from ctxsynth.assemble.config import AssembleConfig
from ctxsynth.assemble.pool import DocPool, index_records, merge_pool
from ctxsynth.io import read_jsonl
from ctxsynth.pipeline.contract import ShardOutput, ShardWork
from ctxsynth.pipeline.executors import Executor
from ctxsynth.pipeline.run import Run
from ctxsynth.progress import Progress
from ctxsynth.records import Rejected, Synthesized, synthesized_from_dict, to_dict
from ctxsynth.tokenize import load_tokenizer

log = logging.getLogger(__name__)
POOL_FILE = "pool-v2.sqlite"  # v2: token ends per document (a v1 file of an older run is not reused)


def read_records(files: list[Path]) -> Iterator[Synthesized]:
    for path in files:
        for d in read_jsonl(path):
            yield synthesized_from_dict(d)


def ensure_pool(files: list[Path], config: AssembleConfig, path: Path, executor: Executor | None = None) -> DocPool:
    """The pool file of these shards at `path`, built (streaming) unless a finished one is there:
    one part per input shard (`index_part`, independent of the others: on `executor`'s workers when
    given, since tokenizing is most of the cost), then one merge here."""
    if not path.exists():
        parts = [path.with_name(f".{path.name}.part-{i:05d}") for i in range(len(files))]
        try:
            jobs = [(str(source), str(part), config.tokenizer) for source, part in zip(files, parts, strict=True)]
            if executor is None:
                for job in jobs:
                    index_part(*job)
            else:
                handles = [executor.submit(index_part, *job) for job in jobs]
                pending = set(handles)
                while pending:
                    pending -= executor.wait(pending)
                for handle in handles:
                    executor.outcome(handle)  # raises what a part raised
            merge_pool(parts, path)
        finally:
            for part in parts:
                part.unlink(missing_ok=True)
    return DocPool(path)


def index_part(source: str, part: str, tokenizer: str) -> int:
    """Index one synth shard's documents into a part file (picklable arguments: any process can do it)."""
    return index_records(read_records([Path(source)]), load_tokenizer(tokenizer), Path(part))


_ASSEMBLER: dict[tuple[Any, ...], Assembler] = {}  # this process's assembler (one at a time)


def shard_assembler(config: AssembleConfig, run_seed: int, pool_path: str) -> Assembler:
    """The Assembler over the pool file, built once per process and reused across its shards
    (a rebuilt pool file is a new file: its inode and mtime are part of the key)."""
    stat = os.stat(pool_path)
    key = (pool_path, stat.st_ino, stat.st_mtime_ns, run_seed, repr(config))
    if key not in _ASSEMBLER:
        release_assembler()
        _ASSEMBLER[key] = Assembler(config, DocPool(Path(pool_path)), run_seed)
    return _ASSEMBLER[key]


def release_assembler() -> None:
    """Close this process's assembler (its pool connection) and forget it."""
    for old in _ASSEMBLER.values():
        if isinstance(old.pool, DocPool):
            old.pool.close()
    _ASSEMBLER.clear()


@dataclass(frozen=True)
class AssembleShard(ShardWork):
    """Assemble input shard `index` against the pool file: settings and paths only, so it pickles
    small; the Assembler (tokenizer, open pool) is built in the process that runs it. It reads no
    run (its settings are its own), so it also runs outside one (`run` may be None)."""

    config: AssembleConfig
    run_seed: int
    files: tuple[str, ...]
    pool_path: str

    def run_shard(self, run: Run | None, index: int, progress: Progress) -> ShardOutput:  # type: ignore[override]
        samples: list[dict[str, Any]] = []
        rejected: list[Rejected] = []
        records = [synthesized_from_dict(d) for d in read_jsonl(Path(self.files[index]))]
        if not records:
            return ShardOutput(samples, rejected)
        assembler = shard_assembler(self.config, self.run_seed, self.pool_path)
        assembler.stats = Counter()
        for record in records:
            item = assembler.assemble(record)
            if isinstance(item, Rejected):
                rejected.append(item)
            else:
                samples.append(to_dict(item))
            progress.advance()
        return ShardOutput(samples, rejected, {"assembler": dict(assembler.stats)})
