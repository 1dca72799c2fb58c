"""The shared helpers of the sweep: the user-JSONL reader, the dtype policy, per-task synth options,
the SQLite store."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ctxsynth.errors import ConfigError, InputError
from ctxsynth.io import read_user_jsonl
from ctxsynth.models import pick_dtype
from ctxsynth.sqlite_store import SqliteStore
from ctxsynth.synth.config import SynthConfig


def test_user_jsonl_reader_numbers_lines_and_reads_gzip(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n\n{"a": 2}\n'))
    assert list(read_user_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(InputError, match=r"b.jsonl:2: not valid JSON"):
        list(read_user_jsonl(bad))


@pytest.mark.parametrize(("text", "hint"), [('[{"a": 1},\n {"a": 2}]\n', "looks like a JSON array"),
                                            ('{\n  "a": 1\n}\n', "looks like pretty-printed JSON")])
def test_json_that_is_not_json_lines_is_named_once(tmp_path: Path, text: str, hint: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(text)
    with pytest.raises(InputError, match=hint):
        list(read_user_jsonl(path))


def test_one_dtype_policy() -> None:
    assert pick_dtype("auto", "cpu") == "float32"
    assert pick_dtype("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(ConfigError, match="use one of auto"):
        pick_dtype("fp8", "cpu")


def test_a_task_cannot_silently_ignore_another_tasks_options() -> None:
    with pytest.raises(ConfigError, match=r"synth.chunk_words is an option of the instruction task"):
        SynthConfig(task="context", chunk_words=500)
    with pytest.raises(ConfigError, match=r"synth.documents is an option of the multidoc task"):
        SynthConfig(task="instruction", documents=3)
    SynthConfig(task="instruction", chunk_words=500, corpus="wiki")
    SynthConfig(task="multidoc", documents=3, target_words=900)


def test_sqlite_store_round_trip(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "d" / "s.sqlite", "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT);")
    store.execute_many("INSERT INTO t VALUES (?, ?)", [("a", "1"), ("b", "2")])
    assert store.query("SELECT v FROM t WHERE k = ?", ("b",)) == [("2",)]
    store.close()
