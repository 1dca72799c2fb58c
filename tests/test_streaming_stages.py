"""Streaming filter, assemble and export (issue 13.1): the same bytes whatever the shard count, and
(given a reference source tree) the same bytes as the in-memory stages they replaced.

The run: seeds with exact, near and ill-formed duplicates -> filter (well-formedness, dedup,
decontamination against an eval file, closed-book probe) -> synthesize (fake backend) -> assemble
(same-task distractors to a token target) -> export (every format, mixed with a general file).

Set CTXSYNTH_REFERENCE_SRC to another checkout's src/ (e.g. the commit before streaming) to run the
same config with that code in a subprocess and compare every output file byte for byte.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctxsynth import config as cfg
from ctxsynth.assemble.corpus import load_corpus
from ctxsynth.io import shard_files
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.run import Run, run_all

STAGES = ["seeds", "filter", "synthesize", "assemble", "export"]
SHARDED = ("seeds", "filter", "filter/rejected", "synth", "synth/rejected", "assemble", "assemble/rejected")


def write_inputs(root: Path) -> None:
    rows = []
    chunks = load_corpus("essays", 30)
    for i in range(48):
        task = ("hotpotqa", "narrativeqa")[i % 2]
        words = chunks[3 * i][1].split()[:14]  # distinct real sentences as questions
        rows.append({"id": f"s{i:03d}", "task": task, "answer": f"Founder {i}",
                     "instruction": "Why does the essay say: " + " ".join(words) + "?"})
    rows.append({**rows[5], "id": "dup-exact", "instruction": rows[5]["instruction"].upper()})
    rows.append({**rows[9], "id": "dup-near", "instruction": rows[9]["instruction"].replace("Why does", "Why did")})
    rows.append({**rows[2], "id": "ill-formed", "instruction": "Who?", "answer": "unknown"})
    rows.insert(20, rows.pop())  # the duplicates and the ill-formed seed sit in different shards
    (root / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "eval.jsonl").write_text(json.dumps({"_id": "e1", "input": next(r for r in rows if r["id"] == "s030")["instruction"], "context": "",
                                                 "answers": ["x"]}) + "\n")
    general = [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]}
               for i in range(40)]
    (root / "general.jsonl").write_text("".join(json.dumps(g) + "\n" for g in general))


def config_dict(root: Path, shards: int, name: str, mix: bool) -> dict:
    return {
        "name": name, "out_dir": str(root / "runs"), "seed": 11, "shards": shards, "stages": STAGES,
        "seeds": {"source": "jsonl", "path": str(root / "seeds.jsonl")},
        "filters": {"reliance": {"enabled": False},
                    "closed_book": {"llm": {"backend": "fake", "model": "probe"}},
                    "decontam": {"eval_files": [str(root / "eval.jsonl")]}},
        "llm": {"backend": "fake", "model": "fake", "max_tokens": 400},
        "synth": {"target_words": 120},
        "assemble": {"target_tokens": 700},
        "export": {"formats": ["trl_messages", "trl_prompt_completion", "longalign", "llamafactory", "parquet",
                               "context_free"],
                   **({"mix_path": str(root / "general.jsonl"), "mix_ratio": 0.5} if mix else {})},
    }


def run_here(root: Path, shards: int, name: str, mix: bool) -> Path:
    run = Run(cfg.from_dict(RunConfig, config_dict(root, shards, name, mix)), base_dir=root)
    run.prepare()
    run_all(run)
    return run.dir


def stage_bytes(run_dir: Path, folder: str) -> bytes:
    return b"".join(gzip.decompress(p.read_bytes()) for p in shard_files(run_dir / folder))


def output_files(run_dir: Path) -> dict[str, bytes]:
    """Every output file of the run (not _state, the request cache, the saved config or the summary)."""
    skip = ("_state/", "cache.sqlite", "config.yaml", "summary.")  # the CLI's summary holds timings
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and not str(p.relative_to(run_dir)).startswith(skip)}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("streaming")
    write_inputs(root)
    return root


@pytest.mark.timeout(900)
def test_one_and_four_shards_give_the_same_bytes_in_every_stage(root: Path) -> None:
    one, four = run_here(root, 1, "one", mix=False), run_here(root, 4, "four", mix=False)
    assert len(shard_files(four / "assemble")) == 4 and len(shard_files(four / "filter")) == 4
    for folder in SHARDED:
        assert stage_bytes(one, folder) == stage_bytes(four, folder), folder
    rejected = [json.loads(line) for line in stage_bytes(one, "filter/rejected").splitlines()]
    assert [(r["id"], r["reason"]) for r in rejected] == [
        ("ill-formed", "unanswerable_answer"), ("dup-exact", "duplicate_exact"), ("dup-near", "duplicate_near"),
        ("s030", "contaminated")]
    assert rejected[1]["record"]["meta"]["filters"]["dedup"]["duplicate_of"] == "s005"
    assert rejected[2]["record"]["meta"]["filters"]["dedup"]["duplicate_of"] == "s009"
    assert len(stage_bytes(one, "assemble").splitlines()) > 30
    exports = {name: data for name, data in output_files(one).items() if name.startswith("export/")}
    assert exports and exports == {n: d for n, d in output_files(four).items() if n.startswith("export/")}


@pytest.mark.timeout(1200)
@pytest.mark.skipif(not os.environ.get("CTXSYNTH_REFERENCE_SRC"), reason="set CTXSYNTH_REFERENCE_SRC to compare")
@pytest.mark.parametrize(("shards", "mix"), [(4, False), (1, True)])
def test_same_bytes_as_the_reference_code(root: Path, shards: int, mix: bool) -> None:
    name = f"ref{shards}{'mix' if mix else ''}"
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config_dict(root, shards, name, mix)))
    env = {**os.environ, "PYTHONPATH": os.environ["CTXSYNTH_REFERENCE_SRC"]}
    done = subprocess.run([sys.executable, "-m", "ctxsynth.cli", "run", str(path)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1100)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = output_files(root / "runs" / name)
    ours = output_files(run_here(root, shards, f"new{shards}{'mix' if mix else ''}", mix))
    assert sorted(ours) == sorted(reference)
    assert [n for n in ours if ours[n] != reference[n]] == []
