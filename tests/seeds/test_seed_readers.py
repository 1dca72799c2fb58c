"""Seed readers: JSONL / Parquet / saved-dataset input, field mapping, bad input and duplicates."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from ctxsynth.io import dumps
from ctxsynth.records import Rejected, Seed, to_dict
from ctxsynth.seeds import SeedError, SeedsConfig, read_seeds
from ctxsynth.seeds.mapping import derived_id


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def jsonl_config(path: Path, **kwargs: Any) -> SeedsConfig:
    return SeedsConfig(source="jsonl", path=str(path), **kwargs)


GOOD = {"id": "a", "instruction": "Who wrote Hamlet?", "answer": "Shakespeare"}


def test_reads_string_and_list_answers_stripping_and_dropping_empty_alternatives(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [
        {"id": "a", "instruction": "  Who wrote Hamlet? ", "answer": " Shakespeare\n", "context": "Text."},
        {"id": "b", "instruction": "Capital of France?", "answer": [" Paris ", "", "  ", "Paris", "paris"]},
        {"id": 7, "instruction": "One answer in a list?", "answer": ["yes"], "task": "summarization"},
    ])
    seeds = list(read_seeds(jsonl_config(path)))
    assert [s.id for s in seeds] == ["a", "b", "7"]
    assert seeds[0].instruction == "Who wrote Hamlet?" and seeds[0].answer == "Shakespeare"
    assert seeds[0].context == "Text." and seeds[1].context is None
    assert seeds[1].answer == ["Paris", "paris"]  # blanks and exact repeats dropped, order kept
    assert seeds[2].answer == ["yes"]  # a one-item list stays a list
    assert [s.task for s in seeds] == ["qa", "qa", "summarization"]
    assert seeds[0].meta["origin"] == {"source": "jsonl", "file": str(path), "line": 1}


def test_default_task_comes_from_config_when_there_is_no_task_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD])
    (seed,) = read_seeds(jsonl_config(path, task="single_doc_qa"))
    assert seed.task == "single_doc_qa"


def test_ids_are_derived_deterministically_when_there_is_no_id_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [
        {"instruction": "Q1?", "answer": "A1"}, {"instruction": "Q2?", "answer": ["A2", "B2"]}])
    first = [s.id for s in read_seeds(jsonl_config(path))]
    again = [s.id for s in read_seeds(jsonl_config(path))]
    assert first == again == [derived_id("Q1?", ["A1"]), derived_id("Q2?", ["A2", "B2"])]
    assert len(first[0]) == 16 and first[0] != first[1]


def test_dotted_paths_reach_nested_dicts_and_lists_of_dicts(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [
        {"qid": "x1", "q": {"text": "When?"}, "answers": {"text": ["1066", "in 1066"]}, "extra": {"m": 1}},
        {"qid": "x2", "q": {"text": "Where?"}, "answers": {"text": ["Hastings"]}, "extra": {"m": 2}},
    ])
    config = jsonl_config(path, fields={"id": "qid", "instruction": "q.text", "answer": "answers.text",
                                        "meta": "extra"})
    seeds = list(read_seeds(config))
    assert [(s.id, s.instruction, s.answer) for s in seeds] == [
        ("x1", "When?", ["1066", "in 1066"]), ("x2", "Where?", ["Hastings"])]
    assert seeds[1].meta["m"] == 2 and seeds[1].meta["origin"]["line"] == 2

    squad_style = write_jsonl(tmp_path / "t.jsonl", [
        {"question": "Q?", "answers": [{"text": "one", "answer_start": 0}, {"text": "two", "answer_start": 5}]}])
    (seed,) = read_seeds(jsonl_config(squad_style, fields={"instruction": "question", "answer": "answers.text"}))
    assert seed.answer == ["one", "two"]


def test_a_column_literally_named_with_a_dot_wins_over_the_dotted_reading(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [{"q.text": "Flat?", "q": {"text": "Nested?"}, "answer": "a"}])
    (seed,) = read_seeds(jsonl_config(path, fields={"instruction": "q.text"}))
    assert seed.instruction == "Flat?"


# --- bad input -----------------------------------------------------------------------------------

BAD_LINES = [
    # (line 2 content, reason, field named in the message)
    ('{"id": "b", "instruction": "Q?", "answer": "x"', "malformed_json", None),
    ({"id": "b", "answer": "x"}, "missing_field", "instruction"),
    ({"id": "b", "instruction": 42, "answer": "x"}, "bad_type", "instruction"),
    ({"id": "b", "instruction": "Q?", "answer": {"text": "x"}}, "bad_type", "answer"),
    ({"id": "b", "instruction": "Q?", "answer": ["x", 3]}, "bad_type", "answer"),
    ({"id": ["b"], "instruction": "Q?", "answer": "x"}, "bad_type", "id"),
    ({"id": "b", "instruction": "   ", "answer": "x"}, "empty_field", "instruction"),
    ({"id": "b", "instruction": "Q?", "answer": ""}, "empty_field", "answer"),
    ({"id": "b", "instruction": "Q?", "answer": ["", " "]}, "empty_field", "answer"),
    ({"id": "b", "instruction": "Q?", "answer": []}, "empty_field", "answer"),
    ({"id": "b", "instruction": None, "answer": "x"}, "empty_field", "instruction"),
    ({"id": "b", "instruction": "Q?", "answer": "x", "context": ""}, "empty_field", "context"),
    ('["b", "Q?", "x"]', "bad_type", None),
]


def _bad_file(tmp_path: Path, line2: Any) -> Path:
    return write_jsonl(tmp_path / "bad.jsonl", [GOOD, line2, {**GOOD, "id": "c"}])


@pytest.mark.parametrize(("line2", "reason", "field"), BAD_LINES)
def test_bad_record_stops_with_file_line_and_field_named(tmp_path: Path, line2: Any, reason: str,
                                                         field: str | None) -> None:
    path = _bad_file(tmp_path, line2)
    with pytest.raises(SeedError) as info:
        list(read_seeds(jsonl_config(path)))
    message = str(info.value)
    assert f"{path}, line 2" in message
    if field is not None:
        assert f"field {field!r}" in message
    assert "Fix:" in message and "seeds.on_error=reject" in message


@pytest.mark.parametrize(("line2", "reason", "field"), BAD_LINES)
def test_bad_record_is_rejected_with_its_reason_and_reading_goes_on(tmp_path: Path, line2: Any, reason: str,
                                                                    field: str | None) -> None:
    path = _bad_file(tmp_path, line2)
    out = list(read_seeds(jsonl_config(path, on_error="reject")))
    assert [type(x) for x in out] == [Seed, Rejected, Seed]
    rejected = out[1]
    assert isinstance(rejected, Rejected)
    assert (rejected.stage, rejected.reason) == ("seeds", reason)
    assert rejected.detail.startswith(f"{path}:2")
    if field is not None:
        assert f"field {field!r}" in rejected.detail
    assert rejected.id in ("b", "bad.jsonl:2")
    assert rejected.record  # the raw input is kept
    dumps(to_dict(rejected))  # and it can be written to rejected/


def test_missing_field_message_says_how_to_map_it(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [{"question": "Q?", "answer": "x"}])
    with pytest.raises(SeedError, match=r"field 'instruction': missing.*seeds\.fields\.instruction=.*question"):
        list(read_seeds(jsonl_config(path)))


def test_an_explicitly_mapped_optional_field_is_required(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD])
    with pytest.raises(SeedError, match=r"line 1, field 'passage': missing"):
        list(read_seeds(jsonl_config(path, fields={"context": "passage"})))


def test_non_utf8_bytes_are_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    good = json.dumps(GOOD).encode()
    path.write_bytes(good + b"\n" + '{"id": "b", "instruction": "Caf\u00e9?", "answer": "x"}'.encode("latin-1")
                     + b"\n")
    with pytest.raises(SeedError, match=r"latin1\.jsonl, line 2: bytes that are not UTF-8 at column 32.*re-encode the file as UTF-8"):
        list(read_seeds(jsonl_config(path)))
    seed, rejected = read_seeds(jsonl_config(path, on_error="reject"))
    assert isinstance(rejected, Rejected) and rejected.reason == "invalid_utf8"
    assert "Caf" in rejected.record["raw"]


@pytest.mark.parametrize("on_error", ["raise", "reject"])
def test_empty_and_missing_files_stop_whatever_on_error_says(tmp_path: Path, on_error: str) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    with pytest.raises(SeedError, match=r"empty\.jsonl: the file is empty"):
        list(read_seeds(jsonl_config(empty, on_error=on_error)))
    with pytest.raises(SeedError, match=r"nope\.jsonl: seed input file not found"):
        list(read_seeds(jsonl_config(tmp_path / "nope.jsonl", on_error=on_error)))


def test_a_folder_given_as_jsonl_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match=r"is a folder, but seeds\.source expects a file"):
        list(read_seeds(jsonl_config(tmp_path)))


def test_blank_lines_keep_line_numbers_true(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD, "", {"id": "b", "answer": "x"}])
    with pytest.raises(SeedError, match=r"s\.jsonl, line 3, field 'instruction'"):
        list(read_seeds(jsonl_config(path)))


def test_gzipped_jsonl_and_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n"))
    assert [s.id for s in read_seeds(jsonl_config(path))] == ["a"]


# --- duplicates ---------------------------------------------------------------------------------


def test_duplicate_id_raises_naming_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, {**GOOD, "id": "z"}, {**GOOD, "answer": "Marlowe"}])
    with pytest.raises(SeedError, match=r"d\.jsonl, line 3, field 'id': duplicate id 'a', already used at line 1"):
        list(read_seeds(jsonl_config(path)))


def test_duplicate_id_rejects_the_second_occurrence_and_keeps_the_first(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, {**GOOD, "answer": "Marlowe"}, {**GOOD, "id": "b"}])
    out = list(read_seeds(jsonl_config(path, on_error="reject")))
    seeds = [x for x in out if isinstance(x, Seed)]
    assert [(s.id, s.answer) for s in seeds] == [("a", "Shakespeare"), ("b", "Shakespeare")]
    (dup,) = [x for x in out if isinstance(x, Rejected)]
    assert (dup.id, dup.reason, dup.record["answer"]) == ("a", "duplicate_id", "Marlowe")
    assert dup.detail.startswith(f"{path}:2") and "first at" in dup.detail


def test_identical_pairs_without_ids_are_caught_as_duplicates(tmp_path: Path) -> None:
    pair = {"instruction": "Q?", "answer": "A"}
    path = write_jsonl(tmp_path / "d.jsonl", [pair, {"instruction": "Other?", "answer": "A"}, pair])
    out = list(read_seeds(jsonl_config(path, on_error="reject")))
    assert [getattr(x, "reason", "seed") for x in out] == ["seed", "seed", "duplicate_id"]


# --- selection ----------------------------------------------------------------------------------


def _numbered(tmp_path: Path, n: int) -> Path:
    return write_jsonl(tmp_path / "n.jsonl", [{"id": f"s{i}", "instruction": f"Q{i}?", "answer": "a"}
                                              for i in range(n)])


def test_limit_and_offset_take_a_window_in_file_order(tmp_path: Path) -> None:
    path = _numbered(tmp_path, 10)
    assert [s.id for s in read_seeds(jsonl_config(path, limit=3))] == ["s0", "s1", "s2"]
    assert [s.id for s in read_seeds(jsonl_config(path, limit=3, offset=8))] == ["s8", "s9"]
    assert list(read_seeds(jsonl_config(path, limit=0))) == []


def test_limit_stops_reading_before_later_bad_records(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD, "{not json"])
    assert [s.id for s in read_seeds(jsonl_config(path, limit=1))] == ["a"]


def test_rejections_are_not_counted_by_limit(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", ["{not json", GOOD, {**GOOD, "id": "b"}])
    out = list(read_seeds(jsonl_config(path, limit=2, on_error="reject")))
    assert [getattr(x, "reason", x.id) for x in out] == ["malformed_json", "a", "b"]


def test_seeded_sample_is_reproducible_sized_and_in_file_order(tmp_path: Path) -> None:
    path = _numbered(tmp_path, 50)
    ids = [s.id for s in read_seeds(jsonl_config(path, limit=5, sample_seed=1))]
    assert ids == [s.id for s in read_seeds(jsonl_config(path, limit=5, sample_seed=1))]
    assert len(ids) == 5 == len(set(ids))
    assert ids == sorted(ids, key=lambda i: int(i[1:]))
    assert ids != [f"s{i}" for i in range(5)]
    assert ids != [s.id for s in read_seeds(jsonl_config(path, limit=5, sample_seed=2))]
    assert len(list(read_seeds(jsonl_config(path, limit=500, sample_seed=1)))) == 50


def test_relative_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "s.jsonl", [GOOD])
    assert [s.id for s in read_seeds(SeedsConfig(source="jsonl", path="s.jsonl"), base_dir=tmp_path)] == ["a"]


# --- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"source": "jsnol", "path": "x"}, r"unknown seed source 'jsnol'\. Did you mean 'jsonl'\?"),
    ({"source": "jsonl"}, r"seeds\.path is required"),
    ({"source": "jsonl", "path": "x", "fields": {"answre": "a"}}, r"unknown seed field 'answre'.*'answer'"),
    ({"source": "jsonl", "path": "x", "on_error": "skip"}, r"seeds\.on_error must be one of raise, reject"),
    ({"source": "jsonl", "path": "x", "sample_seed": 3}, r"set seeds\.limit too"),
    ({"source": "jsonl", "path": "x", "split": "train"}, r"seeds\.split applies to sources 'hf_disk' and 'hub' only"),
    ({"source": "squad", "path": "x"}, r"seeds\.path is not used by the built-in source 'squad'"),
    ({"source": "squad", "fields": {"answer": "a"}}, r"seeds\.fields is not used"),
])
def test_bad_config_is_refused_with_the_option_named(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(SeedError, match=pattern):
        SeedsConfig(**kwargs)
