"""Per-record randomness: seeds derived from (run seed, stage, record id, attempt).

Because every record draws from its own generator, shard count, worker count and resumes cannot
change the output.
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(run_seed: int, stage: str, record_id: str, attempt: int = 0) -> int:
    """A 31-bit seed (accepted by every API's `seed` field)."""
    digest = hashlib.sha256(f"{run_seed}\x1f{stage}\x1f{record_id}\x1f{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def rng_for(run_seed: int, stage: str, record_id: str) -> random.Random:
    return random.Random(derive_seed(run_seed, stage, record_id))
