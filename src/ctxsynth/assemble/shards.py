"""The assemble stage's work, split for bounded memory and for other processes.

`ensure_pool` is the one global pass: it streams the synthesize stage's shards into the disk pool
(ctxsynth.assemble.pool) once, in the driver, before any shard is assembled; a rerun reuses the
finished file. `AssembleShard` then assembles one input shard: it pickles as its settings and
paths, and builds its Assembler over the pool file lazily in the process that runs it, so a
worker's memory is one shard plus the pool documents it reads.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctxsynth.assemble.config import AssembleConfig
from ctxsynth.assemble.pool import DocPool, build_pool
from ctxsynth.io import read_jsonl
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import Rejected, Synthesized, synthesized_from_dict, to_dict

if TYPE_CHECKING:
    from ctxsynth.assemble.assembler import Assembler
    from ctxsynth.stages import ShardOutput

log = logging.getLogger(__name__)
POOL_FILE = "pool.sqlite"


def read_records(files: list[Path]) -> Iterator[Synthesized]:
    for path in files:
        for d in read_jsonl(path):
            yield synthesized_from_dict(d)


def ensure_pool(files: list[Path], config: AssembleConfig, path: Path) -> DocPool:
    """The pool file of these shards at `path`, built (streaming) unless a finished one is there."""
    if not path.exists():
        from ctxsynth.tokenize import load_tokenizer

        build_pool(read_records(files), load_tokenizer(config.tokenizer), path)
    return DocPool(path)


@dataclass
class AssembleShard:
    """`work(i)` for run_sharded: assemble input shard i against the pool file."""

    config: AssembleConfig
    run_seed: int
    files: list[Path]
    pool_path: Path
    progress: Progress = field(default_factory=NullProgress, repr=False)
    _assembler: Assembler | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        # the assembler (tokenizer, open pool) and the progress bar stay in this process
        return {**self.__dict__, "_assembler": None, "progress": NullProgress()}

    def assembler(self) -> Assembler:
        if self._assembler is None:
            from ctxsynth.assemble.assembler import Assembler

            self._assembler = Assembler(self.config, DocPool(self.pool_path), self.run_seed)
        return self._assembler

    def __call__(self, i: int) -> ShardOutput:
        from ctxsynth.stages import ShardOutput

        samples: list[dict[str, Any]] = []
        rejected: list[Rejected] = []
        records = [synthesized_from_dict(d) for d in read_jsonl(self.files[i])]
        if records:
            assembler = self.assembler()
            assembler.stats = Counter()
            for record in records:
                item = assembler.assemble(record)
                if isinstance(item, Rejected):
                    rejected.append(item)
                else:
                    samples.append(to_dict(item))
                self.progress.advance()
            stats = {"assembler": dict(assembler.stats)}
        else:
            stats = {}
        return ShardOutput(samples, rejected, stats)
