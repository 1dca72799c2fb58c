"""Shard files, atomic writes and completion markers: the resume mechanism of every stage.

A shard is written to a temporary file and renamed into place, and its completion marker is
written after it, so a crash at any moment leaves either a complete shard or none.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

from ctxsynth.errors import InputError

_UMASK = os.umask(0)
os.umask(_UMASK)


def dumps(record: dict[str, Any]) -> str:
    """Canonical one-line JSON: stable key order, so equal records give equal bytes."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class AtomicFile:
    """The one atomic writer: a temporary file beside `path`, written as a stream (`handle`), made
    durable (`finish`: flush, fsync, close) and renamed into place (`commit`) with the usual
    permissions, or removed (`discard`). A reader never sees a half-written `path`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.tmp = Path(name)
        self.handle = cast(BinaryIO, os.fdopen(fd, "wb"))

    def finish(self) -> None:
        if not self.handle.closed:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()

    def commit(self) -> None:
        self.finish()
        os.chmod(self.tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """`with atomic_writer(path) as f: f.write(...)`: `path` appears complete when the block ends, or
    not at all when it raises."""
    out = AtomicFile(path)
    try:
        yield out.handle
        out.commit()
    except BaseException:
        out.discard()
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def encode_jsonl(records: Iterable[dict[str, Any]], compress: bool) -> bytes:
    text = "".join(dumps(r) + "\n" for r in records).encode("utf-8")
    if not compress:
        return text
    buf = io.BytesIO()
    # mtime=0 and no file name: the same records always give the same bytes
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(text)
    return buf.getvalue()


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    records = list(records)
    atomic_write_bytes(path, encode_jsonl(records, compress=path.suffix == ".gz"))
    return len(records)


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read records written by this project (trusted input: no per-line error recovery)."""
    with open_text(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_user_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of every non-blank line of a user's JSONL file (plain or .gz).

    The one reader of user JSONL: a line that is not JSON stops with the file and line named, and a
    file that is a JSON array or pretty-printed JSON says so once instead of failing on every line."""
    with open_text(Path(path)) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{line_no}: {not_jsonl_hint(line, line_no) or f'not valid JSON ({e.msg})'}"
                                 ) from None


def not_jsonl_hint(line: str, line_no: int) -> str | None:
    """Why a file whose `line_no`-th line does not parse is probably not JSON Lines at all, or None."""
    text = line.strip()
    if line_no == 1 and text.startswith("["):
        return "not JSON Lines: looks like a JSON array; write one JSON object per line"
    if text in ("{", "[") or (line_no <= 2 and text.endswith(("{", "[")) and text.startswith(("{", '"'))):
        return "not JSON Lines: looks like pretty-printed JSON; write one JSON object per line"
    return None


def shard_name(index: int, suffix: str = ".jsonl.gz") -> str:
    return f"shard-{index:05d}{suffix}"


def shard_files(folder: Path) -> list[Path]:
    """Shard files of a stage folder in order (rejected/ and temporaries excluded)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("shard-*.jsonl*") if not p.name.startswith("."))


def read_shards(folder: Path) -> Iterator[dict[str, Any]]:
    for path in shard_files(folder):
        yield from read_jsonl(path)


def split_even(n_items: int, n_shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges: concatenating shards in order restores the input order."""
    n_shards = max(1, n_shards)
    base, extra = divmod(n_items, n_shards)
    ranges, start = [], 0
    for i in range(n_shards):
        stop = start + base + (1 if i < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges


class Markers:
    """Completion markers under runs/<name>/_state/<stage>/."""

    def __init__(self, state_dir: Path, stage: str) -> None:
        self.dir = state_dir / stage

    def shard_done(self, index: int) -> bool:
        return (self.dir / f"shard-{index:05d}.done").exists()

    def mark_shard(self, index: int, stats: dict[str, Any]) -> None:
        atomic_write_text(self.dir / f"shard-{index:05d}.done", dumps(stats) + "\n")

    def shard_stats(self) -> list[dict[str, Any]]:
        if not self.dir.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob("shard-*.done"))]

    def stage_done(self) -> bool:
        return (self.dir / "DONE").exists()

    def mark_stage(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "DONE", dumps(summary) + "\n")

    def clear(self) -> None:
        if self.dir.is_dir():
            for p in self.dir.iterdir():
                p.unlink()
