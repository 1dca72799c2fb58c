"""Every export format loads with `datasets`, carries the right rows, and ends with a true manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from datasets import load_dataset
from export_factory import make_sample, make_samples

from ctxsynth.export import FORMATS, export_samples
from ctxsynth.registry import RegistryError


@pytest.fixture
def samples():
    return make_samples()


ALL = ["trl_messages", "trl_prompt_completion", "longalign", "llamafactory", "parquet", "context_free"]


def _export(samples, out: Path, formats=ALL, **kw):
    return export_samples(samples, out, formats, config_hash="cfg123", tokenizer_name="smollm2", **kw)


def _load(folder: Path):
    if (folder / "data.parquet").exists():
        return load_dataset("parquet", data_files=str(folder / "data.parquet"), split="train")
    return load_dataset("json", data_files=str(folder / "data.jsonl"), split="train")


def test_every_format_loads_with_datasets_and_keeps_rows(samples, tmp_path):
    _export(samples, tmp_path)
    expected_answers = [s.messages[-1]["content"] for s in samples]
    for fmt in ALL:
        ds = _load(tmp_path / fmt)
        assert len(ds) == len(samples), fmt
        if fmt == "trl_prompt_completion":
            assert [row["completion"][0]["content"] for row in ds] == expected_answers
            assert ds[0]["prompt"] == [samples[0].messages[0]]
        elif fmt == "llamafactory":
            conv = ds[0]["conversations"]
            assert [t["from"] for t in conv] == ["human", "gpt"]
            assert conv[1]["value"] == expected_answers[0]
        else:
            assert [row["messages"][-1]["content"] for row in ds] == expected_answers, fmt


def test_parquet_keeps_sample_metadata(samples, tmp_path):
    _export(samples, tmp_path, ["parquet"])
    ds = _load(tmp_path / "parquet")
    row = ds[3]
    s = samples[3]
    assert (row["id"], row["task"], row["seed_id"], row["source"]) == (s.id, s.task, s.seed_id, "long")
    assert row["gold_char_span"] == s.gold_char_span and row["gold_token_span"] == s.gold_token_span
    assert row["gold_depth"] == pytest.approx(s.gold_depth)
    assert row["tokens_total"] == s.tokens["total"] and row["tokens_per_document"] == [20, 25, 22]
    assert row["distractor_ids"] == s.distractor_ids and row["answers"] == [s.answer]
    assert json.loads(row["meta_json"]) == s.meta
    start, end = row["gold_char_span"]
    assert "[doc 3]" in row["messages"][0]["content"][start:end]


def test_llamafactory_dataset_info_maps_the_sharegpt_columns(samples, tmp_path):
    _export(samples, tmp_path, ["llamafactory"], dataset_name="my_long")
    info = json.loads((tmp_path / "llamafactory" / "dataset_info.json").read_text())
    entry = info["my_long"]
    assert entry["file_name"] == "data.jsonl" and entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "conversations"}
    assert entry["tags"]["user_tag"] == "human" and entry["tags"]["assistant_tag"] == "gpt"
    assert (tmp_path / "llamafactory" / entry["file_name"]).exists()


def test_longalign_rows_hold_messages_only(samples, tmp_path):
    _export(samples, tmp_path, ["longalign"])
    first = json.loads((tmp_path / "longalign" / "data.jsonl").read_text().splitlines()[0])
    assert list(first) == ["messages"]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]


def test_manifest_is_written_last_and_describes_the_files(samples, tmp_path):
    manifests = _export(samples, tmp_path)
    for fmt in ALL:
        folder = tmp_path / fmt
        on_disk = json.loads((folder / "manifest.json").read_text())
        assert on_disk == manifests[fmt]
        assert on_disk["format"] == fmt and on_disk["config_hash"] == "cfg123"
        assert on_disk["counts"] == {"total": 10, "long": 10, "general": 0,
                                     "per_task": {"multi_doc_qa": 5, "single_doc_qa": 5}}
        assert on_disk["tokens"]["total"]["max"] == 109 and on_disk["tokens"]["within_target"] == 10
        data_mtime = 0
        for entry in on_disk["files"]:
            data = (folder / entry["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
            data_mtime = max(data_mtime, (folder / entry["path"]).stat().st_mtime_ns)
        assert (folder / "manifest.json").stat().st_mtime_ns >= data_mtime
        assert sorted(p.name for p in folder.iterdir()) == sorted(["manifest.json", *(e["path"] for e in on_disk["files"])])


def test_same_inputs_give_same_bytes(samples, tmp_path):
    _export(samples, tmp_path / "a")
    _export(samples, tmp_path / "b")
    for fmt in ALL:
        for f in (tmp_path / "a" / fmt).iterdir():
            assert f.read_bytes() == (tmp_path / "b" / fmt / f.name).read_bytes(), f


def test_context_free_twin_has_the_instruction_and_no_context(samples, tmp_path):
    _export(samples, tmp_path, ["context_free"])
    ds = _load(tmp_path / "context_free")
    for s, row in zip(samples, ds, strict=True):
        user, assistant = row["messages"]
        assert user == {"role": "user", "content": s.meta["instruction"]}
        assert assistant == s.messages[-1]
        start, end = s.gold_char_span
        gold = s.messages[0]["content"][start:end]
        assert gold not in user["content"] and "lighthouse at Varn Point was lit" not in user["content"]


def test_context_free_without_instruction_fails_before_writing(tmp_path):
    bad = [make_sample(0), make_sample(1, with_instruction=False)]
    with pytest.raises(ValueError, match=r"s001.*meta\['instruction'\]"):
        _export(bad, tmp_path, ["trl_messages", "context_free"])
    assert not (tmp_path / "trl_messages").exists()


def test_unknown_format_suggests_the_close_name(samples, tmp_path):
    with pytest.raises(RegistryError, match="Did you mean 'longalign'"):
        _export(samples, tmp_path, ["longalgin"])
    assert set(ALL) <= set(FORMATS.names())


def test_rerun_replaces_a_stale_folder_consistently(samples, tmp_path):
    _export(samples, tmp_path, ["trl_messages"])
    manifest = _export(samples[:4], tmp_path, ["trl_messages"])["trl_messages"]
    lines = (tmp_path / "trl_messages" / "data.jsonl").read_text().splitlines()
    data_entry = next(e for e in manifest["files"] if e["path"] == "data.jsonl")
    assert len(lines) == 4 == manifest["counts"]["total"] == data_entry["rows"]
