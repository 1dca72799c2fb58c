"""Bad seed input, the rest of it (issue 14 item 4): a JSON array or pretty-printed JSON is one
error, a missing mapped column in a table is one error naming it, oversized seeds are rejected with
a reason, and a missing file says truthfully what relative paths resolve against."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctxsynth.records import Rejected, Seed
from ctxsynth.seeds import SeedError, SeedsConfig, read_seeds

ROWS = [{"id": f"r{i}", "question": f"Who wrote book {i}?", "answer": f"Author {i}"} for i in range(3)]


@pytest.mark.parametrize(("text", "hint"), [(json.dumps(ROWS), "looks like a JSON array"),
                                            (json.dumps(ROWS, indent=2), "looks like a JSON array"),
                                            (json.dumps(ROWS[0], indent=2), "looks like pretty-printed JSON")])
def test_a_json_file_that_is_not_json_lines_is_one_error(tmp_path: Path, text: str, hint: str) -> None:
    path = tmp_path / "seeds.jsonl"
    path.write_text(text)
    config = SeedsConfig(source="jsonl", path=str(path), fields={"instruction": "question"}, on_error="reject")
    with pytest.raises(SeedError, match=f"seeds.jsonl:1: not JSON Lines: {hint}"):
        list(read_seeds(config))


def test_a_missing_mapped_column_in_parquet_is_one_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "seeds.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    config = SeedsConfig(source="parquet", path=str(path), fields={"instruction": "prompt"}, on_error="reject")
    with pytest.raises(SeedError, match=r"no column 'prompt' for seeds.fields.instruction=prompt; "
                                        r"columns: id, question, answer"):
        list(read_seeds(config))
    ok = SeedsConfig(source="parquet", path=str(path), fields={"instruction": "question"})
    assert [s.id for s in read_seeds(ok)] == ["r0", "r1", "r2"]


def test_seeds_over_max_chars_are_rejected_with_a_reason(tmp_path: Path) -> None:
    rows = [*ROWS, {"id": "big", "question": "What is in it?", "answer": "x", "context": "word " * 30_000}]
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = SeedsConfig(source="jsonl", path=str(path), fields={"instruction": "question"})
    items = list(read_seeds(config))
    assert [i.id for i in items if isinstance(i, Seed)] == ["r0", "r1", "r2"]
    (rejected,) = [i for i in items if isinstance(i, Rejected)]
    assert rejected.reason == "too_long" and "> seeds.max_chars=100000" in rejected.detail
    unlimited = SeedsConfig(source="jsonl", path=str(path), fields={"instruction": "question"}, max_chars=None)
    assert len([i for i in read_seeds(unlimited) if isinstance(i, Seed)]) == 4


def test_a_missing_seed_file_says_what_relative_paths_resolve_against(tmp_path: Path) -> None:
    config = SeedsConfig(source="jsonl", path="nope.jsonl")
    with pytest.raises(SeedError, match="resolve against the directory ctxsynth was run from"):
        list(read_seeds(config, base_dir=tmp_path))
