"""Datasets named by Hub id (or `hf:<folder>`) in an eval config, read through `datasets.load_dataset`.

Its own module so that LongBench v1 and v2 share it without importing each other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ctxsynth.errors import InputError

__all__ = ["HUB_PREFIX", "hub_records", "hub_spec"]

HUB_PREFIX = "hf:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_spec(entry: str, base: Path) -> str | None:
    """The load_dataset path of a `longbench:` entry: "hf:<id or folder>", or an owner/name id
    that is not a local path (THUDM/LongBench, THUDM/LongBench-v2); None for a local file/folder."""
    if entry.startswith(HUB_PREFIX):
        return entry[len(HUB_PREFIX):]
    if _HUB_ID.match(entry) and not (Path(entry).exists() or (base / entry).exists()):
        return entry
    return None


def hub_records(path: str, name: str | None, split: str) -> list[dict[str, Any]]:
    """Records of a dataset through `datasets.load_dataset(path, name, split=split)`: a Hub id
    (cached, or fetched where a hub is reachable) or a local folder that load_dataset reads."""
    try:
        from datasets import load_dataset
    except ImportError:
        from ctxsynth.errors import MissingDependency

        raise MissingDependency("LongBench from the Hub needs `datasets`: pip install 'ctxsynth[hf]'") from None
    try:
        dataset = load_dataset(path, name, split=split)
    except Exception as err:  # datasets raises many types (offline, no such config, bad files)
        raise InputError(f"load_dataset({path!r}, {name!r}, split={split!r}) failed: {err}") from None
    return [dict(row) for row in dataset]
