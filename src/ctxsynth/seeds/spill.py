"""The seeds stage at scale: one streaming pass over the seed source writes a spill file (driver),
then the workers cut it into even shards by byte offset. Memory holds one offset per seed (8 bytes),
never the seeds; the shards are the same bytes as splitting an in-memory list evenly.
"""

from __future__ import annotations

import json
import os
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ctxsynth.io import dumps, split_even
from ctxsynth.progress import Progress
from ctxsynth.records import Rejected, to_dict
from ctxsynth.stages import ShardOutput, ShardWork

if TYPE_CHECKING:
    from ctxsynth.runner import Run


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
    from ctxsynth.seeds import read_seeds

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
