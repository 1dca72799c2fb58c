"""Mixing with a general SFT file: the ratio is exact, the draw is seeded, both file shapes load."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from datasets import load_dataset
from export_factory import make_samples

from ctxsynth.export import MixConfig, export_samples
from ctxsynth.export.mix import load_general


def _write_general(path: Path, n: int, sharegpt: bool = False) -> Path:
    lines = []
    for i in range(n):
        if sharegpt:
            rec = {"system": "Be brief.", "conversations": [{"from": "human", "value": f"hi {i}"},
                                                            {"from": "gpt", "value": f"hello {i}"}]}
        else:
            rec = {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"hello {i}"}]}
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return path


def _export(tmp_path: Path, mix: MixConfig, formats=("trl_messages",), seed: int = 7, out: str = "out"):
    return export_samples(make_samples(), tmp_path / out, list(formats), config_hash="c",
                          tokenizer_name="smollm2", mix=mix, seed=seed)


@pytest.mark.parametrize("ratio,expected", [(2.5, 25), (1.0, 10), (0.3, 3), (0.0, 0)])
def test_mix_ratio_is_exact(tmp_path, ratio, expected):
    general = _write_general(tmp_path / "general.jsonl", 40)
    manifest = _export(tmp_path, MixConfig(general, ratio))["trl_messages"]
    rows = load_dataset("json", data_files=str(tmp_path / "out/trl_messages/data.jsonl"), split="train")
    n_general = sum(row["messages"][0]["content"].startswith("hi ") for row in rows)
    assert (len(rows), n_general) == (10 + expected, expected)
    assert manifest["counts"] == {"total": 10 + expected, "long": 10, "general": expected,
                                  "per_task": {"multi_doc_qa": 5, "single_doc_qa": 5}}
    assert manifest["mix"]["n_general"] == expected


def test_from_fraction_gives_the_long_share(tmp_path):
    general = _write_general(tmp_path / "general.jsonl", 40)
    manifest = _export(tmp_path, MixConfig.from_fraction(general, long_fraction=0.25))["trl_messages"]
    assert manifest["counts"]["long"] / manifest["counts"]["total"] == 0.25


def test_mix_is_seeded_and_shuffles_all_formats_alike(tmp_path):
    general = _write_general(tmp_path / "general.jsonl", 40)
    mix = MixConfig(general, 2.0)
    _export(tmp_path, mix, formats=("trl_messages", "longalign"), out="a")
    _export(tmp_path, mix, formats=("trl_messages",), out="b")
    _export(tmp_path, mix, formats=("trl_messages",), seed=8, out="c")
    a = (tmp_path / "a/trl_messages/data.jsonl").read_bytes()
    assert a == (tmp_path / "b/trl_messages/data.jsonl").read_bytes()
    assert a != (tmp_path / "c/trl_messages/data.jsonl").read_bytes()
    ids_order = [json.loads(line)["messages"] for line in a.decode().splitlines()]
    longalign = [json.loads(line)["messages"] for line in (tmp_path / "a/longalign/data.jsonl").read_text().splitlines()]
    assert ids_order == longalign
    long_positions = [i for i, m in enumerate(ids_order) if not m[0]["content"].startswith("hi ")]
    assert long_positions != list(range(10)), "long samples were not shuffled into the general ones"


def test_sharegpt_and_gzip_general_files_are_read(tmp_path):
    plain = _write_general(tmp_path / "g.jsonl", 5, sharegpt=True)
    gz = tmp_path / "g.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    rows = load_general(gz).rows
    assert len(rows) == 5
    assert rows[0].messages == ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi 0"},
                                {"role": "assistant", "content": "hello 0"})


def test_unusable_general_records_are_counted_not_fatal(tmp_path):
    path = tmp_path / "g.jsonl"
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    ends_with_user = {"messages": [{"role": "user", "content": "q"}]}
    path.write_text("\n".join(json.dumps(r) for r in (good, ends_with_user, {"text": "x"})) + "\n")
    general = load_general(path)
    assert len(general.rows) == 1 and sum(general.skipped.values()) == 2


def test_too_small_general_file_fails_unless_repeat(tmp_path):
    general = _write_general(tmp_path / "general.jsonl", 4)
    with pytest.raises(ValueError, match="needs 20 general records but the file has 4"):
        _export(tmp_path, MixConfig(general, 2.0))
    manifest = _export(tmp_path, MixConfig(general, 2.0, repeat=True))["trl_messages"]
    assert manifest["counts"]["general"] == 20


def test_negative_ratio_is_refused(tmp_path):
    with pytest.raises(ValueError, match="ratio must be >= 0"):
        MixConfig(tmp_path / "x.jsonl", -1.0)
