"""The seeds stage, at scale: one streaming pass over the seed source writes a spill file (driver),
then the workers cut it into even shards by byte offset. Memory holds one offset per seed (8 bytes),
never the seeds; the shards are the same bytes as splitting an in-memory list evenly.
"""

from __future__ import annotations

import json
import logging
import os
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxsynth.io import dumps, split_even
from ctxsynth.pipeline.contract import ShardOutput, ShardWork, run_sharded
from ctxsynth.pipeline.run import Run
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import Rejected, to_dict
from ctxsynth.seeds.readers import read_seeds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedShards(ShardWork):
    kept: str  # spill file of kept seeds, one canonical JSON line each
    rejected: str  # spill file of rejected seeds (all go to shard 0, as before)
    ranges: tuple[tuple[int, int], ...]  # (byte offset, seeds) per shard

    def run_shard(self, run: Run, index: int, progress: Progress) -> ShardOutput:
        start, count = self.ranges[index]
        with open(self.kept, "rb") as f:
            f.seek(start)
            kept = [json.loads(f.readline()) for _ in range(count)]
        if index != 0:
            return ShardOutput(kept, None)
        with open(self.rejected, "rb") as f:
            rejected = [Rejected(**json.loads(line)) for line in f]
        return ShardOutput(kept, rejected)

    def remove(self) -> None:
        for path in (self.kept, self.rejected):
            Path(path).unlink(missing_ok=True)


def spill_seeds(run: Run, progress: Progress) -> tuple[SeedShards, int, int]:
    """Read every seed once into the spill files; return the shards' work and the kept/rejected counts."""
    folder = run.state / "seeds"
    folder.mkdir(parents=True, exist_ok=True)
    kept_path, rejected_path = folder / ".spill-kept.jsonl", folder / ".spill-rejected.jsonl"
    offsets = array("q")
    n_rejected = 0
    with open(kept_path, "wb") as kept, open(rejected_path, "wb") as rejected:
        for item in read_seeds(run.config.seeds, base_dir=run.base_dir):
            if isinstance(item, Rejected):
                rejected.write((dumps(to_dict(item)) + "\n").encode("utf-8"))
                n_rejected += 1
            else:
                offsets.append(kept.tell())
                kept.write((dumps(to_dict(item)) + "\n").encode("utf-8"))
            progress.advance()
        end = kept.tell()
        kept.flush()
        os.fsync(kept.fileno())
    ranges = tuple((offsets[a] if a < len(offsets) else end, b - a)
                   for a, b in split_even(len(offsets), run.config.shards))
    return SeedShards(str(kept_path), str(rejected_path), ranges), len(offsets), n_rejected


def run_seeds(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    """Read the seed source once, streaming it to a spill file (driver pass), then cut the spill into
    even shards in the workers: memory does not grow with the number of seeds."""
    progress = progress or NullProgress()
    progress.start("seeds", run.config.seeds.limit or 0)
    try:
        work, n_kept, n_rejected = spill_seeds(run, progress)
        summary = run_sharded(run, "seeds", run.config.shards, work)
    finally:
        progress.finish()
    work.remove()
    run.record_seed_inputs()
    log.info("seeds: %d kept, %d rejected", n_kept, n_rejected)
    return summary
