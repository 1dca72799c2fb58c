"""Shard files, atomic writes and completion markers: the resume mechanism of every stage.

A shard is written to a temporary file and renamed into place, and its completion marker is
written after it, so a crash at any moment leaves either a complete shard or none.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import io
import json
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

from ctxsynth.errors import InputError, UserError

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


# what a full, protected or read-only disk raises: the user's to fix, never a shard to retry
RESOURCE_ERRNOS = {errno.ENOSPC: "free space on that file system", errno.EDQUOT: "free space within your disk quota",
                   errno.EACCES: "give this user write permission there, or choose another out_dir",
                   errno.EPERM: "give this user write permission there, or choose another out_dir",
                   errno.EROFS: "the file system is read-only: choose another out_dir"}


class ResourceError(UserError):
    """A write failed for want of space or permission; the message names the path and what to do."""

    def __init__(self, errno_: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno_


def resource_error(exc: BaseException) -> ResourceError | None:
    """The user error for an OSError of a full disk, a missing permission or a read-only file system
    (None for anything else): one line with the path and what to free."""
    if isinstance(exc, ResourceError):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in RESOURCE_ERRNOS:
        return None
    where = f"{exc.filename}: " if exc.filename else ""
    return ResourceError(exc.errno, f"{where}{exc.strerror or os.strerror(exc.errno)}; {RESOURCE_ERRNOS[exc.errno]}, "
                         "then rerun the same command (finished shards and every answer already received are kept)")


def _name_path(exc: BaseException, path: Path) -> None:
    """Give an OSError without a file name (a failed write or fsync) the path it was writing."""
    if isinstance(exc, OSError) and not exc.filename:
        exc.filename = str(path)


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """`with atomic_writer(path) as f: f.write(...)`: `path` appears complete when the block ends, or
    not at all when it raises."""
    try:
        out = AtomicFile(path)
    except OSError as exc:
        _name_path(exc, Path(path).parent)
        raise
    try:
        yield out.handle
        out.commit()
    except BaseException as exc:
        out.discard()
        _name_path(exc, out.path)
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


class DamagedFile(InputError):
    """A file this project wrote is unreadable (truncated, garbled); the message names it and the fix."""


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read records written by this project: a file damaged since (truncated, garbled) is a
    DamagedFile naming it, not a decoder's traceback."""
    try:
        with open_text(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedFile(f"{path}: damaged ({type(exc).__name__}: {exc}); rerun the stage that wrote it with "
                          "--force <stage> (cached answers are not paid twice)") from None


def read_user_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of every non-blank line of a user's JSONL file (plain or .gz).

    The one reader of user JSONL: a line that is not JSON stops with the file and line named, and a
    file that is a JSON array or pretty-printed JSON says so once instead of failing on every line."""
    try:
        with open_text(Path(path)) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{line_no}: "
                                     f"{not_jsonl_hint(line, line_no) or f'not valid JSON ({e.msg})'}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # click would print a bare "Aborted!" for EOFError
        raise InputError(f"{path}: not a complete gzip file ({e}); copy or download it again") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-encode it as UTF-8") from None


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


def file_entry(folder: Path, path: Path, records: int) -> list[Any]:
    """What a shard marker records of a file it vouches for: [path under the stage folder, bytes, records]."""
    return [path.relative_to(folder).as_posix(), path.stat().st_size, records]


class Markers:
    """Completion markers under runs/<name>/_state/<stage>/. A shard marker's `files` lists the files
    it vouches for (`file_entry`), which `verify` checks before a later stage reads them."""

    def __init__(self, state_dir: Path, stage: str) -> None:
        self.dir = state_dir / stage
        self.stage = stage

    def shard_done(self, index: int) -> bool:
        return (self.dir / f"shard-{index:05d}.done").exists()

    def mark_shard(self, index: int, stats: dict[str, Any]) -> None:
        atomic_write_text(self.dir / f"shard-{index:05d}.done", dumps(stats) + "\n")

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            value = None
        if not isinstance(value, dict):
            raise DamagedFile(f"{path}: damaged completion marker (not the JSON ctxsynth writes); rerun with "
                              f"--force {self.stage} (cached answers are not paid twice)")
        return value

    def shard_stats(self) -> list[dict[str, Any]]:
        if not self.dir.is_dir():
            return []
        return [self._read(p) for p in sorted(self.dir.glob("shard-*.done"))]

    def verify(self, folder: Path) -> None:
        """Every file the shard markers vouch for is in `folder` with the size they recorded; else a
        DamagedFile naming the first one that is missing or changed, and the stage to rerun."""
        for stats in self.shard_stats():
            for name, size, records in stats.get("files", []):
                path = folder / name
                fix = f"rerun with --force {self.stage} (cached answers are not paid twice)"
                if not path.exists():
                    raise DamagedFile(f"{path}: missing, though the {self.stage} stage's marker says it was written "
                                      f"({records} records); {fix}")
                if path.stat().st_size != size:
                    raise DamagedFile(f"{path}: {path.stat().st_size} bytes, but the {self.stage} stage wrote {size} "
                                      f"({records} records): truncated or changed since; {fix}")

    def stage_done(self) -> bool:
        return (self.dir / "DONE").exists()

    def stage_summary(self) -> dict[str, Any]:
        """The stage's DONE marker (its merged counts); a damaged one is named with the fix."""
        return self._read(self.dir / "DONE")

    def mark_stage(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "DONE", dumps(summary) + "\n")

    def clear(self) -> None:
        if self.dir.is_dir():
            for p in self.dir.iterdir():
                p.unlink()


class RunLocked(UserError):
    """Another process holds the run directory's lock."""


_HELD_LOCKS: dict[str, int] = {}  # lock file -> its open descriptor (one per process, kept for its life)


def hold_lock(path: Path, what: Path) -> None:
    """Hold an OS advisory lock (flock) on the file `path` for the life of this process, for the
    directory `what`: a second process gets a RunLocked naming the PID that holds it. The kernel
    releases it on any exit, kill -9 included. Taking it again in the same process is a no-op (one
    process is one writer)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if key in _HELD_LOCKS:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise RunLocked(f"{what} is in use by another ctxsynth process (PID {holder}): one writer per run "
                        "directory; wait for it to finish or stop it, or choose another name") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD_LOCKS[key] = fd
