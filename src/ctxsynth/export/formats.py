"""Export formats: each streams rows into named file contents, found by name in `FORMATS`.

Each format is a `Sink` that takes rows one at a time and writes its data file as a stream (JSONL
lines; Parquet row groups of at most PARQUET_GROUP_ROWS rows or PARQUET_GROUP_CHARS characters of
messages), so an export's memory does not grow with its rows; `export_samples` streams every format
at once. Files are canonical JSON (sorted keys) or Parquet, so the same rows always
give the same bytes.

| name                  | files                                | loads with                          |
|-----------------------|--------------------------------------|-------------------------------------|
| trl_messages          | data.jsonl {"id", "messages"}        | TRL SFTTrainer (conversational LM)  |
| trl_prompt_completion | data.jsonl {"id", "prompt", "completion"} | TRL, completion-only loss      |
| longalign             | data.jsonl {"messages"}              | LongAlign / LongWriter trainers     |
| llamafactory          | data.jsonl (sharegpt) + dataset_info.json | LLaMA-Factory                  |
| parquet               | data.parquet, messages + Sample metadata  | datasets.load_dataset("parquet")|
| context_free          | data.jsonl {"id", "messages"}, no context | the coherence diagnostic twin  |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from ctxsynth.export import rows as r
from ctxsynth.io import dumps
from ctxsynth.registry import Registry

LLAMAFACTORY_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                     "assistant_tag": "gpt", "system_tag": "system"}
# a Parquet row group ends after this many rows or characters of messages, whichever comes first;
# an export below both is one row group, exactly as pyarrow.parquet.write_table writes it
PARQUET_GROUP_ROWS = 2048
PARQUET_GROUP_CHARS = 16 * 1024 * 1024


class Sink(Protocol):
    def add(self, row: r.ExportRow) -> None: ...

    def close(self) -> dict[str, bytes]:
        """Finish the data file; return the format's small side files (name -> bytes)."""
        ...


class JsonlSink:
    """One canonical JSON line per row."""

    def __init__(self, out: BinaryIO, encode: Callable[[r.ExportRow], dict[str, Any]]) -> None:
        self.out = out
        self.encode = encode

    def add(self, row: r.ExportRow) -> None:
        self.out.write((dumps(self.encode(row)) + "\n").encode("utf-8"))

    def close(self) -> dict[str, bytes]:
        return {}


class LlamaFactorySink(JsonlSink):
    """sharegpt lines, and a dataset_info.json whose columns name `system` when any row has one."""

    def __init__(self, out: BinaryIO, dataset_name: str) -> None:
        super().__init__(out, r.sharegpt)
        self.dataset_name = dataset_name
        self.system = False

    def add(self, row: r.ExportRow) -> None:
        record = r.sharegpt(row)
        self.system = self.system or "system" in record
        self.out.write((dumps(record) + "\n").encode("utf-8"))

    def close(self) -> dict[str, bytes]:
        columns = {"messages": "conversations"}
        if self.system:
            columns["system"] = "system"
        entry = {self.dataset_name: {"file_name": "data.jsonl", "formatting": "sharegpt",
                                     "columns": columns, "tags": LLAMAFACTORY_TAGS}}
        info = json.dumps(entry, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        return {"dataset_info.json": info.encode("utf-8")}

_INT_LIST = pa.list_(pa.int64())
_STR_LIST = pa.list_(pa.string())
PARQUET_SCHEMA = pa.schema([
    ("id", pa.string()), ("source", pa.string()),
    ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ("task", pa.string()), ("seed_id", pa.string()), ("answers", _STR_LIST), ("template", pa.string()),
    ("gold_index", pa.int64()), ("gold_indices", _INT_LIST), ("gold_depth", pa.float64()),
    ("gold_char_span", _INT_LIST), ("gold_token_span", _INT_LIST), ("n_documents", pa.int64()),
    ("distractor_ids", _STR_LIST), ("distractor_strategy", pa.string()), ("separator", pa.string()),
    ("tokens_total", pa.int64()), ("tokens_target", pa.int64()), ("tokens_prompt", pa.int64()),
    ("tokens_answer", pa.int64()), ("tokens_per_document", _INT_LIST), ("tokenizer", pa.string()),
    ("tokens_json", pa.string()), ("meta_json", pa.string()),
])


def _parquet_record(row: r.ExportRow) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": row.id, "source": row.source, "messages": list(row.messages)}
    s = row.sample
    if s is None:
        return rec
    tok = s.tokens
    rec.update(
        task=s.task, seed_id=s.seed_id, answers=list(s.answer) if isinstance(s.answer, list) else [s.answer],
        template=s.template, gold_index=s.gold_index, gold_indices=list(s.gold_indices),
        gold_depth=float(s.gold_depth), gold_char_span=list(s.gold_char_span),
        gold_token_span=list(s.gold_token_span), n_documents=s.n_documents,
        distractor_ids=list(s.distractor_ids), distractor_strategy=s.distractor_strategy,
        separator=s.separator, tokens_total=tok.get("total"), tokens_target=tok.get("target"),
        tokens_prompt=tok.get("prompt"), tokens_answer=tok.get("answer"),
        tokens_per_document=tok.get("per_document"), tokenizer=s.tokenizer,
        tokens_json=json.dumps(tok, sort_keys=True), meta_json=json.dumps(s.meta, sort_keys=True, ensure_ascii=False),
    )
    return rec


class ParquetSink:
    """Rows buffered into row groups of bounded size, each written as soon as it is full."""

    def __init__(self, out: BinaryIO) -> None:
        self.writer = pq.ParquetWriter(out, PARQUET_SCHEMA, compression="zstd")
        self.buffer: list[dict[str, Any]] = []
        self.chars = 0
        self.groups = 0

    def add(self, row: r.ExportRow) -> None:
        self.buffer.append(_parquet_record(row))
        self.chars += sum(len(m.get("content") or "") for m in row.messages)
        if len(self.buffer) >= PARQUET_GROUP_ROWS or self.chars >= PARQUET_GROUP_CHARS:
            self._flush()

    def _flush(self) -> None:
        self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=PARQUET_SCHEMA))
        self.buffer, self.chars = [], 0
        self.groups += 1

    def close(self) -> dict[str, bytes]:
        if self.buffer or not self.groups:  # no rows at all: an empty table, as write_table writes it
            self._flush()
        self.writer.close()
        return {}


@dataclass(frozen=True)
class FormatSpec:
    """A format's data file and the sink that streams rows into it."""

    data_file: str
    sink: Callable[[BinaryIO, str], Sink]  # (data stream, dataset name) -> sink


def _messages(row: r.ExportRow) -> dict[str, Any]:
    return {"id": row.id, "messages": list(row.messages)}


SPECS: dict[str, FormatSpec] = {
    "trl_messages": FormatSpec("data.jsonl", lambda out, _: JsonlSink(out, _messages)),
    "trl_prompt_completion": FormatSpec("data.jsonl", lambda out, _: JsonlSink(out, r.prompt_completion)),
    "longalign": FormatSpec("data.jsonl", lambda out, _: JsonlSink(out, lambda row: {"messages": list(row.messages)})),
    "llamafactory": FormatSpec("data.jsonl", LlamaFactorySink),
    "parquet": FormatSpec("data.parquet", lambda out, _: ParquetSink(out)),
    "context_free": FormatSpec("data.jsonl", lambda out, _: JsonlSink(out, lambda row: _messages(r.context_free(row)))),
}


FORMATS = Registry("export format")  # name -> its FormatSpec (`ctxsynth ls`, did-you-mean for a typo)
for _name, _spec in SPECS.items():
    FORMATS.register(_name, _spec)
