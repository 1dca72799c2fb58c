"""Seeds from Parquet files and from datasets saved with `save_to_disk`: round trips and bad rows."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctxsynth.records import Rejected, Seed
from ctxsynth.seeds import SeedError, SeedsConfig, read_seeds

ROWS = [
    {"qid": "p1", "question": "Largest planet?", "answers": {"text": ["Jupiter", " jupiter "]}, "doc": "Jupiter..."},
    {"qid": "p2", "question": "Smallest planet?", "answers": {"text": ["Mercury"]}, "doc": "Mercury..."},
]
MAPPING = {"id": "qid", "instruction": "question", "answer": "answers.text", "context": "doc"}


def test_parquet_round_trip_with_nested_field_mapping(tmp_path: Path) -> None:
    path = tmp_path / "seeds.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    seeds = list(read_seeds(SeedsConfig(source="parquet", path=str(path), fields=MAPPING, task="single_doc_qa")))
    assert [(s.id, s.instruction, s.answer, s.context, s.task) for s in seeds] == [
        ("p1", "Largest planet?", ["Jupiter", "jupiter"], "Jupiter...", "single_doc_qa"),
        ("p2", "Smallest planet?", ["Mercury"], "Mercury...", "single_doc_qa"),
    ]
    assert seeds[1].meta["origin"] == {"source": "parquet", "file": str(path), "line": 2}


def test_parquet_bad_row_is_named_by_row_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    rows = [{"id": "a", "instruction": "Q?", "answer": "x"}, {"id": "b", "instruction": "Q2?", "answer": None},
            {"id": "c", "instruction": "Q3?", "answer": "y"}]
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(SeedError, match=r"bad\.parquet, row 2, field 'answer': null"):
        list(read_seeds(SeedsConfig(source="parquet", path=str(path))))
    out = list(read_seeds(SeedsConfig(source="parquet", path=str(path), on_error="reject")))
    assert [type(x) for x in out] == [Seed, Rejected, Seed]
    assert out[1].reason == "empty_field" and out[1].detail.startswith(f"{path}:2 field 'answer'")


def test_parquet_file_problems_stop_with_the_file_named(tmp_path: Path) -> None:
    not_parquet = tmp_path / "text.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(SeedError, match=r"text\.parquet: not a readable Parquet file"):
        list(read_seeds(SeedsConfig(source="parquet", path=str(not_parquet), on_error="reject")))
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"instruction": pa.array([], pa.string()), "answer": pa.array([], pa.string())}), empty)
    with pytest.raises(SeedError, match=r"empty\.parquet: the Parquet file has no rows"):
        list(read_seeds(SeedsConfig(source="parquet", path=str(empty))))


def test_hf_disk_round_trip_of_a_dataset_and_a_dataset_dict(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    single = tmp_path / "single"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(single))
    seeds = list(read_seeds(SeedsConfig(source="hf_disk", path=str(single), fields=MAPPING)))
    assert [(s.id, s.answer) for s in seeds] == [("p1", ["Jupiter", "jupiter"]), ("p2", ["Mercury"])]

    splits = tmp_path / "splits"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:1]),
                          "validation": datasets.Dataset.from_list(ROWS[1:])}).save_to_disk(str(splits))
    config = SeedsConfig(source="hf_disk", path=str(splits), split="validation", fields=MAPPING)
    assert [s.id for s in read_seeds(config)] == ["p2"]
    with pytest.raises(SeedError, match=r"has splits train, validation; choose one with seeds\.split"):
        list(read_seeds(SeedsConfig(source="hf_disk", path=str(splits), fields=MAPPING)))
    with pytest.raises(SeedError, match=r"no split 'test'; seeds\.split must be one of train, validation"):
        list(read_seeds(SeedsConfig(source="hf_disk", path=str(splits), split="test", fields=MAPPING)))


def test_hf_disk_bad_row_and_missing_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "ds"
    datasets.Dataset.from_list([{"instruction": "Q?", "answer": "x"}, {"instruction": "", "answer": "y"}]
                               ).save_to_disk(str(folder))
    with pytest.raises(SeedError, match=r"ds, row 2, field 'instruction': empty string"):
        list(read_seeds(SeedsConfig(source="hf_disk", path=str(folder))))
    with pytest.raises(SeedError, match=r"seed input folder not found"):
        list(read_seeds(SeedsConfig(source="hf_disk", path=str(tmp_path / "absent"))))
