"""Export formats: each turns the row list into named file contents, found by name in `FORMATS`.

A writer returns {file name: bytes} and writes nothing itself; `export_samples` writes the files
atomically and the manifest after them. Files are canonical JSON (sorted keys) or Parquet, so the
same rows always give the same bytes.

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

import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ctxsynth.export import rows as r
from ctxsynth.io import encode_jsonl
from ctxsynth.registry import Registry

Writer = Callable[[Sequence[r.ExportRow], str], dict[str, bytes]]

FORMATS = Registry("export format")
LLAMAFACTORY_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                     "assistant_tag": "gpt", "system_tag": "system"}


def _jsonl(records: Sequence[dict[str, Any]]) -> dict[str, bytes]:
    return {"data.jsonl": encode_jsonl(records, compress=False)}


def write_trl_messages(rows: Sequence[r.ExportRow], dataset_name: str) -> dict[str, bytes]:
    return _jsonl([{"id": row.id, "messages": list(row.messages)} for row in rows])


def write_trl_prompt_completion(rows: Sequence[r.ExportRow], dataset_name: str) -> dict[str, bytes]:
    return _jsonl([r.prompt_completion(row) for row in rows])


def write_longalign(rows: Sequence[r.ExportRow], dataset_name: str) -> dict[str, bytes]:
    return _jsonl([{"messages": list(row.messages)} for row in rows])


def write_context_free(rows: Sequence[r.ExportRow], dataset_name: str) -> dict[str, bytes]:
    return write_trl_messages([r.context_free(row) for row in rows], dataset_name)


def write_llamafactory(rows: Sequence[r.ExportRow], dataset_name: str) -> dict[str, bytes]:
    records = [r.sharegpt(row) for row in rows]
    columns = {"messages": "conversations"}
    if any("system" in rec for rec in records):
        columns["system"] = "system"
    entry = {dataset_name: {"file_name": "data.jsonl", "formatting": "sharegpt",
                            "columns": columns, "tags": LLAMAFACTORY_TAGS}}
    info = json.dumps(entry, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return {**_jsonl(records), "dataset_info.json": info.encode("utf-8")}


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


def write_parquet(rows: Sequence[r.ExportRow], dataset_name: str) -> dict[str, bytes]:
    table = pa.Table.from_pylist([_parquet_record(row) for row in rows], schema=PARQUET_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return {"data.parquet": buf.getvalue()}


FORMATS.register("trl_messages", write_trl_messages)
FORMATS.register("trl_prompt_completion", write_trl_prompt_completion)
FORMATS.register("longalign", write_longalign)
FORMATS.register("llamafactory", write_llamafactory)
FORMATS.register("parquet", write_parquet)
FORMATS.register("context_free", write_context_free)
