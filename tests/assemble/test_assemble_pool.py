"""The disk pool: the same documents in the same order as the in-memory pool, so every distractor
strategy picks the same distractors from it; it pickles as a path and reopens where it is used."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from test_assemble_multigold import multi_pool

from conftest import make_pool
from ctxsynth.assemble import AssembleConfig, Assembler, shards
from ctxsynth.assemble.pool import DocPool, build_pool, index_records, merge_pool
from ctxsynth.assemble.shards import AssembleShard
from ctxsynth.io import shard_name, write_jsonl
from ctxsynth.progress import NullProgress
from ctxsynth.records import Synthesized, to_dict
from ctxsynth.synth.stage import synthesized_to_dict
from ctxsynth.tokenize import load_tokenizer


def _records() -> list[Synthesized]:
    """Two tasks, multi-document records, a repeated id (the later record wins), unsorted ids."""
    pool = make_pool(30) + multi_pool(6)
    twin = Synthesized(id=pool[3].id, task=pool[3].task, seed=pool[3].seed, context=pool[3].context + " Revised.",
                       provenance={}, verdicts={})
    return list(reversed(pool[:20])) + [twin] + pool[20:]


def _disk(tmp_path: Path, records: list[Synthesized]) -> DocPool:
    path = tmp_path / "pool.sqlite"
    build_pool(iter(records), load_tokenizer("smollm2"), path)
    return DocPool(path)


def _bytes(items: list) -> str:
    return "\n".join(json.dumps(to_dict(s), sort_keys=True) for s in items)


def test_disk_pool_holds_the_in_memory_pool_in_order(tmp_path: Path) -> None:
    records = _records()
    memory = Assembler(AssembleConfig(), records, 0).pool
    disk = _disk(tmp_path, records)
    assert len(disk) == len(memory) == 30 + sum(len(r.documents) for r in multi_pool(6))
    assert list(disk) == memory  # every field: text, counts, windows, normalised text, sketch
    assert disk[:5] == memory[:5] and disk[-1] == memory[-1] and disk[7] == memory[7]
    assert [d.id for d in memory].count("rec003") == 1 and disk.get("rec003").text.endswith("Revised.")
    assert disk.get("missing") is None and disk.position("rec003") == [d.id for d in memory].index("rec003")
    with pytest.raises(IndexError):
        disk[len(memory)]


@pytest.mark.parametrize("options", [
    {"distractors": "same_task", "target_tokens": [900, 2000]},
    {"distractors": "any_task", "n_documents": 6},
    {"distractors": "same_task", "target_tokens": [900, 2000], "random_draw": "sample"},
    {"distractors": "any_task", "n_documents": 6, "random_draw": "sample"},
    {"distractors": "bm25", "target_tokens": 1500},
    pytest.param({"distractors": "embedding", "target_tokens": 1500}, marks=pytest.mark.slow),
])
def test_every_strategy_picks_the_same_distractors_from_disk(tmp_path: Path, options: dict) -> None:
    records = _records()
    config = AssembleConfig(**options)
    memory = Assembler(config, records, 5)
    disk = Assembler(config, _disk(tmp_path, records), 5)
    from_memory = [memory.assemble(r) for r in records]
    from_disk = [disk.assemble(r) for r in records]
    assert _bytes(from_disk) == _bytes(from_memory)
    assert any(getattr(s, "distractor_ids", None) for s in from_disk)


def test_shard_work_pickles_as_paths_and_assembles_the_same_in_a_copy(tmp_path: Path) -> None:
    records = _records()
    files = [tmp_path / "synth" / shard_name(i) for i in range(2)]
    write_jsonl(files[0], [synthesized_to_dict(r) for r in records[:18]])
    write_jsonl(files[1], [synthesized_to_dict(r) for r in records[18:]])
    pool = _disk(tmp_path, records)
    work = AssembleShard(AssembleConfig(target_tokens=1200), 2, tuple(map(str, files)), str(pool.path))
    direct = work.run_shard(None, 1, NullProgress())
    blob = pickle.dumps(work)
    assert len(blob) < 2000  # settings and paths, not documents or a tokenizer
    copy = pickle.loads(blob)
    shards._ASSEMBLER.clear()  # as in a fresh worker process
    again = copy.run_shard(None, 1, NullProgress())
    assert again.kept == direct.kept and again.stats == direct.stats
    assert pickle.loads(pickle.dumps(pool)).get("rec001") == pool.get("rec001")
    expected = Assembler(AssembleConfig(target_tokens=1200), records, 2)
    assert direct.kept == [to_dict(s) for s in (expected.assemble(r) for r in records[18:])
                           if not hasattr(s, "reason")]


def test_parts_indexed_apart_merge_into_the_same_pool(tmp_path: Path) -> None:
    records = _records()  # the repeated id's later record sits in the second part
    tokenizer = load_tokenizer("smollm2")
    parts = [tmp_path / f"part{i}" for i in range(3)]
    for part, chunk in zip(parts, (records[:12], records[12:25], records[25:]), strict=True):
        index_records(iter(chunk), tokenizer, part)
    merge_pool(parts, tmp_path / "merged.sqlite")
    assert list(DocPool(tmp_path / "merged.sqlite")) == list(_disk(tmp_path, records))


def test_stored_token_ends_are_those_of_a_fresh_tokenization(tmp_path: Path) -> None:
    from ctxsynth.assemble.documents import pack_ends, token_ends

    tokenizer = load_tokenizer("smollm2")
    disk = _disk(tmp_path, _records())
    for doc in disk:
        fresh = [end for _, end in tokenizer.offsets_batch([doc.text])[0]]
        assert doc.ends is not None and token_ends(tokenizer, doc) == fresh
    assert pack_ends([3, 70000]) is None and pack_ends([5, 4]) is None  # a step too long, unsorted
    assert list(token_ends(tokenizer, disk[0].__class__(**{**disk[0].__dict__, "ends": None}))) == token_ends(tokenizer, disk[0])
