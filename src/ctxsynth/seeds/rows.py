"""Raw rows of the seed input files: JSONL (optionally gzipped), Parquet and saved HF datasets.

Each reader streams `Row`s: a parsed dict with its location, or the reason the line could not be
parsed (bad UTF-8, malformed JSON, not an object). Problems with the file as a whole (missing,
empty, not the expected format) raise SeedError at once, whatever on_error says: there is no
record to reject.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ctxsynth.io import not_jsonl_hint
from ctxsynth.seeds.sources import Location, SeedError

logger = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"


@dataclass
class Row:
    """One input record: `data` when it parsed, else `reason`/`problem` and the raw text."""

    where: Location
    data: dict[str, Any] | None = None
    reason: str | None = None
    problem: str | None = None
    fix: str | None = None
    raw_text: str | None = None


def require_file(path: Path, what: str = "file") -> None:
    """Stop unless `path` exists and is a file (what="file") or a folder (what="folder")."""
    if not path.exists():
        raise SeedError(f"{path}: seed input {what} not found; check seeds.path (relative paths resolve "
                        "against the directory ctxsynth was run from, not the config file's folder)")
    if (what == "file") != path.is_file():
        found = "a folder" if path.is_dir() else "not a folder"
        raise SeedError(f"{path}: is {found}, but seeds.source expects a {what}; check seeds.path")


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # type: ignore[return-value]


def jsonl_rows(path: Path) -> Iterator[Row]:
    """Lines of a JSONL file; blank lines are not records and are passed over."""
    require_file(path)
    n_records = 0
    try:
        with _open_binary(path) as f:
            for number, line in enumerate(f, start=1):
                if number == 1 and line.startswith(BOM):
                    line = line[len(BOM):]
                if not line.strip():
                    continue
                n_records += 1
                row = _parse_line(line, Location(str(path), number, "line"))
                if n_records == 1 and row.data is None:  # a whole file in the wrong format is one error
                    hint = not_jsonl_hint(line.decode("utf-8", errors="replace"), number)
                    if hint:
                        raise SeedError(f"{path}:{number}: {hint} (seeds.source=jsonl), or convert it with "
                                        "`jq -c '.[]' FILE.json > FILE.jsonl`")
                yield row
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # click would print a bare 'Aborted!' for EOFError
        raise SeedError(f"{path}: not a complete gzip file ({e}); copy or download it again") from None
    if n_records == 0:
        raise SeedError(f"{path}: the file is empty (no JSON records); point seeds.path at the seed file")


def _parse_line(line: bytes, where: Location) -> Row:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return Row(where, reason="invalid_utf8", problem=f"bytes that are not UTF-8 at column {e.start + 1}",
                   fix="re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
                   raw_text=line.decode("utf-8", errors="replace").rstrip("\r\n"))
    try:
        data = json.loads(text.strip())
    except json.JSONDecodeError as e:
        at = "" if e.msg.endswith(" at") else " at"  # "Unterminated string starting at" ends in it already
        return Row(where, reason="malformed_json", problem=f"malformed JSON ({e.msg}{at} column {e.colno})",
                   fix="make the line one complete JSON object",
                   raw_text=text.rstrip("\r\n"))
    if "\\u" in text and _has_lone_surrogate(data):  # "\\ud800" is valid JSON but no UTF-8 text: it could never be written
        return Row(where, reason="invalid_utf8", problem="a lone UTF-16 surrogate escape (\\ud800-\\udfff) that is "
                   "not text", fix="write the character itself, or a complete surrogate pair",
                   raw_text=text.rstrip("\r\n"))
    if not isinstance(data, dict):
        return Row(where, reason="bad_type", problem=f"a JSON {_json_kind(data)} where an object was expected",
                   fix="make each line a JSON object with the seed fields",
                   raw_text=text.rstrip("\r\n"))
    return Row(where, data=data)


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def parquet_rows(path: Path, batch_size: int = 1024,
                 check_columns: Callable[[list[str]], None] | None = None) -> Iterator[Row]:
    """Rows of a Parquet file as dicts (structs become dicts, lists stay lists), numbered from 1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    require_file(path)
    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise SeedError(f"{path}: not a readable Parquet file ({e}); check seeds.path and seeds.source") from None
    if reader.metadata.num_rows == 0:
        raise SeedError(f"{path}: the Parquet file has no rows; point seeds.path at the seed file")
    if check_columns is not None:
        check_columns(list(reader.schema_arrow.names))
    number = 0
    for batch in reader.iter_batches(batch_size=batch_size):
        for data in batch.to_pylist():
            number += 1
            yield Row(Location(str(path), number, "row"), data=data)


def hf_disk_rows(path: Path, split: str | None,
                 check_columns: Callable[[list[str]], None] | None = None) -> Iterator[Row]:
    """Rows of a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    try:
        import datasets
    except ImportError:
        raise SeedError("seeds.source 'hf_disk' needs the datasets package: pip install 'ctxsynth[hf]'") from None
    require_file(path, "folder")
    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise SeedError(f"{path}: not a dataset saved with save_to_disk ({e}); check seeds.path") from None
    dataset = _pick_split(loaded, path, split)
    if len(dataset) == 0:
        raise SeedError(f"{path}: the dataset has no rows; point seeds.path at the seed dataset")
    if check_columns is not None:
        check_columns(list(dataset.column_names))
    label = f"{path}[{split}]" if split else str(path)
    for number, data in enumerate(dataset, start=1):
        yield Row(Location(label, number, "row"), data=dict(data))


def _pick_split(loaded: Any, path: Path, split: str | None) -> Any:
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        names = sorted(loaded)
        if split is None:
            if len(names) == 1:
                return loaded[names[0]]
            raise SeedError(f"{path}: the dataset has splits {', '.join(names)}; choose one with seeds.split")
        if split not in loaded:
            raise SeedError(f"{path}: no split {split!r}; seeds.split must be one of {', '.join(names)}")
        return loaded[split]
    if split is not None:
        raise SeedError(f"{path}: the dataset has no splits but seeds.split={split!r}; remove seeds.split")
    return loaded
