"""Training conversations from every ctxsynth export (and the same shapes from elsewhere).

`data.train_files` may name export folders (`runs/<name>/export/<format>`: their data files are read,
never manifest.json, README.md or dataset_info.json), JSONL files (plain or .gz) or Parquet files.
A row is any of the shapes the exports write:

| shape                              | written by                                   |
|------------------------------------|----------------------------------------------|
| {"messages": [...]}                | trl_messages, longalign, context_free, parquet |
| {"prompt": [...], "completion": [...]} | trl_prompt_completion (conversational)   |
| {"conversations": [{from, value}], "system"?} | llamafactory (sharegpt)           |

Each becomes one list of {role, content} messages ending with the assistant answer. Problems name
the file and line (or row) and say what to do; an input without rows is an error, not an empty run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ctxsynth.errors import InputError, UserError
from ctxsynth.io import read_user_jsonl

log = logging.getLogger(__name__)

Message = dict[str, str]
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class TrainDataError(UserError, ValueError):
    """Training data that cannot be used as given; the message names the file and the fix."""


def data_files(path: Path) -> list[Path]:
    """The data files of a file or an export folder (its manifest's data files when it has one)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TrainDataError(f"{path}: training data not found; set data.train_files to export folders "
                             "(runs/<name>/export/<format>) or JSONL/Parquet files")
    manifest = path / "manifest.json"
    if manifest.exists():
        entries = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
        return [path / e["path"] for e in entries if e.get("rows") is not None]
    files = sorted(p for p in path.iterdir() if p.name.endswith(DATA_SUFFIXES) and p.name != "dataset_info.json")
    if not files:
        raise TrainDataError(f"{path}: a folder without data files (*.jsonl, *.jsonl.gz, *.parquet)")
    return files


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for number, row in enumerate(pq.read_table(path).to_pylist(), 1):
            yield f"{path}, row {number}", row
        return
    try:
        for number, row in read_user_jsonl(path):
            if not isinstance(row, dict):
                raise TrainDataError(f"{path}:{number}: expected a JSON object per line")
            yield f"{path}:{number}", row
    except InputError as e:  # not JSON (Lines): the same message, as a training-data error
        raise TrainDataError(f"{e}; training files are JSON Lines") from None


def conversation(row: dict[str, Any], where: str) -> list[Message]:
    """The row's conversation as {role, content} messages, whichever export shape it has."""
    if row.get("messages"):
        messages = [{"role": m.get("role"), "content": m.get("content")} for m in row["messages"]]
    elif row.get("prompt") is not None and row.get("completion") is not None:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str) or isinstance(completion, str):
            raise TrainDataError(f"{where}: plain-text prompt/completion rows have no chat turns; export "
                                 "the conversational form (trl_prompt_completion) instead")
        messages = [{"role": m.get("role"), "content": m.get("content")} for m in [*prompt, *completion]]
    elif row.get("conversations"):
        messages = [{"role": "system", "content": row["system"]}] if row.get("system") else []
        for turn in row["conversations"]:
            role = SHAREGPT_ROLES.get(str(turn.get("from", turn.get("role"))).lower())
            messages.append({"role": role, "content": turn.get("value", turn.get("content"))})
    else:
        raise TrainDataError(f"{where}: no 'messages', 'prompt'/'completion' or 'conversations' field; "
                             "point data.train_files at a ctxsynth export")
    if not messages or messages[-1]["role"] != "assistant" or not isinstance(messages[-1]["content"], str):
        raise TrainDataError(f"{where}: the conversation must end with an assistant answer")
    return messages


def read_conversations(paths: Sequence[str | Path], limit: int | None = None) -> list[list[Message]]:
    """Every conversation of the given files and export folders, in order, up to `limit`."""
    rows: list[list[Message]] = []
    for given in paths:
        for path in data_files(Path(given)):
            for where, row in _rows(path):
                rows.append(conversation(row, where))
                if limit is not None and len(rows) >= limit:
                    return rows
    if paths and not rows:
        raise TrainDataError(f"no training rows in {', '.join(str(p) for p in paths)}: the export is empty "
                             "(check the run's assemble stage: did every record get rejected?)")
    return rows
