"""Streaming export: rows flow once through every format's sink into temporary files beside their
final names; the files are renamed into place, and each folder's manifest is written last.

Memory holds one row at a time (plus a Parquet row group and eight bytes per row of token
statistics for the manifest). With mixing, the long rows are spooled to a temporary JSONL file and
read back by offset in the mixed order, so the order is exactly the one `mix_rows` gives. A failure
part-way leaves the previous export untouched: temporary files are removed, nothing is renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxsynth.export.formats import SPECS, Sink
from ctxsynth.export.manifest import MANIFEST_NAME, RowStats, file_entry
from ctxsynth.export.mix import MixConfig, plan_mix
from ctxsynth.export.rows import ExportRow, row_from_sample
from ctxsynth.io import AtomicFile, dumps
from ctxsynth.records import Sample, to_dict

_CHUNK = 1 << 20


@dataclass
class FormatStream:
    """One format folder being written: its sink over a temporary data file."""

    fmt: str
    folder: Path
    dataset_name: str
    file: AtomicFile = field(init=False)
    sink: Sink = field(init=False)
    created: bool = field(init=False)  # the folder did not exist before: a failure removes it

    def __post_init__(self) -> None:
        self.created = not self.folder.exists()
        spec = SPECS[self.fmt]
        self.file = AtomicFile(self.folder / spec.data_file)
        self.sink = spec.sink(self.file.handle, self.dataset_name)

    def finish(self) -> tuple[dict[str, bytes], dict[str, Any]]:
        """Close the data file; (side files, the data file's manifest entry without rows)."""
        extra = self.sink.close()
        self.file.finish()
        digest, size = hashlib.sha256(), 0
        with open(self.file.tmp, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        entry = {"path": SPECS[self.fmt].data_file, "bytes": size, "sha256": digest.hexdigest()}
        return extra, entry

    def commit(self) -> None:
        self.file.commit()

    def discard(self, failed: bool) -> None:
        self.file.discard()
        if failed and self.created and not any(self.folder.iterdir()):
            self.folder.rmdir()


def long_rows(samples: Iterable[Sample], twin: bool) -> Iterator[ExportRow]:
    """Rows of the samples; with `twin`, each row's context-free twin is checked to be buildable."""
    from ctxsynth.export.rows import context_free

    for sample in samples:
        row = row_from_sample(sample)
        if twin:
            context_free(row)
        yield row


def mixed_rows(rows: Iterable[ExportRow], mix: MixConfig, seed: int, spool_dir: Path,
               stack: ExitStack) -> tuple[Iterator[ExportRow], dict[str, Any]]:
    """The rows mixed with the general file in `mix_rows`' order, spooling long rows to disk."""
    fd, name = tempfile.mkstemp(dir=spool_dir, prefix=".mix-spool.", suffix=".tmp")
    spool = Path(name)
    stack.callback(spool.unlink, missing_ok=True)
    offsets = array("q")
    with os.fdopen(fd, "wb") as out:
        for row in rows:
            assert row.sample is not None  # long rows carry their sample
            offsets.append(out.tell())
            out.write((dumps(to_dict(row.sample)) + "\n").encode("utf-8"))
    order, general, info = plan_mix(len(offsets), mix, seed)
    reader = stack.enter_context(open(spool, "rb"))

    def read(index: int) -> ExportRow:
        if index >= len(offsets):
            return general[index - len(offsets)]
        reader.seek(offsets[index])
        return row_from_sample(Sample(**json.loads(reader.readline())))

    return (read(i) for i in order), info


def stream_formats(rows: Iterable[ExportRow], out_dir: Path, formats: list[str],
                   dataset_name: str) -> tuple[RowStats, dict[str, tuple[dict[str, bytes], dict[str, Any]]]]:
    """Write every format's data file from one pass over the rows; rename them into place only
    when all succeeded. Returns the row statistics and, per format, (side files, data file entry)."""
    streams: list[FormatStream] = []
    failed = True
    try:
        streams = [FormatStream(fmt, out_dir / fmt, dataset_name) for fmt in formats]
        stats = RowStats()
        for row in rows:
            stats.add(row)
            for stream in streams:
                stream.sink.add(row)
        finished = {s.fmt: s.finish() for s in streams}
        n = sum(stats.sources.values())
        for s in streams:
            (s.folder / MANIFEST_NAME).unlink(missing_ok=True)  # no stale manifest vouches for new files
            s.commit()
            finished[s.fmt][1]["rows"] = n
        failed = False
        return stats, finished
    finally:
        for s in streams:
            s.discard(failed)


def entries(files: dict[str, bytes]) -> list[dict[str, Any]]:
    return [file_entry(name, data, None) for name, data in files.items()]
