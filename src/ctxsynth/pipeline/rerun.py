"""Incremental, honest reruns: which stages a config change invalidates, and whether the seed files
changed since the seeds stage read them.

Each stage declares the config keys it reads (`Stage.reads` in ctxsynth.pipeline.stages). A changed
key invalidates the first stage that reads it and every stage after it; the keys in
`NO_OUTPUT_KEYS` (where and how far a run goes) invalidate nothing and are left out of the config
hash. The seeds stage records a fingerprint (size and SHA-256) of every input file, so an edited
seed file is named instead of silently ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ctxsynth.io import atomic_write_text
from ctxsynth.pipeline.stages import STAGE_NAMES, stage

# the one list of keys (dotted prefixes) that change where, how or how far a run goes, never what it
# writes: a change reruns nothing, and the config hash leaves them out (executor, workers,
# shard_retries and ray: where shards run)
NO_OUTPUT_KEYS = ("out_dir", "name", "max_consecutive_failures", "llm.max_cost_usd",
                  "executor", "workers", "shard_retries", "ray")
# also left out of the hash: the shard count changes the layout of the stage folders (so it reruns
# the seeds stage), never the bytes of the export
LAYOUT_KEYS = ("shards",)


def matches(key: str, prefixes: tuple[str, ...]) -> bool:
    """Whether the dotted `key` is one of `prefixes` or below one."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def without_keys(view: dict[str, Any], prefixes: tuple[str, ...], where: str = "") -> dict[str, Any]:
    """A copy of the nested mapping without the keys (dotted prefixes) in `prefixes`."""
    out: dict[str, Any] = {}
    for key, value in view.items():
        path = f"{where}{key}"
        if matches(path, prefixes):
            continue
        out[key] = without_keys(value, prefixes, path + ".") if isinstance(value, dict) else value
    return out


def first_affected(changed: list[str], old_stages: list[str], new_stages: list[str]) -> str | None:
    """The earliest stage (of the new config) whose output a change of `changed` keys invalidates."""
    hits: list[str] = []
    for key in changed:
        if matches(key, NO_OUTPUT_KEYS):
            continue
        if key == "stages":  # a stage added or dropped changes what every later stage reads
            moved = [s for s in STAGE_NAMES if (s in old_stages) != (s in new_stages)]
            hits.extend(moved[:1])
            continue
        readers = [s for s in STAGE_NAMES if matches(key, stage(s).reads)]
        hits.append(readers[0] if readers else STAGE_NAMES[0])  # unknown to every stage: assume all
    present = [s for s in STAGE_NAMES if s in hits]
    return present[0] if present else None


def file_fingerprint(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def seed_inputs(path: Path) -> dict[str, dict[str, Any]]:
    """Fingerprints of a seed file, or of every file under a seed folder (hf_disk datasets)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p): file_fingerprint(p) for p in files if p.exists()}


def changed_inputs(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Files added, removed or changed since the fingerprints were recorded."""
    names = sorted(set(recorded) | set(current))
    return [n for n in names if recorded.get(n) != current.get(n)]


def write_inputs(path: Path, inputs: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(inputs, indent=1, sort_keys=True) + "\n")
