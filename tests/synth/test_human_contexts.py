"""The human-context arm (`synth.task: human`): seeds with their real context go through assembly and
export like synthesized contexts, without any model being built or asked."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.io import read_jsonl, read_shards


def _run(tmp_path: Path, rows: list[dict], **extra: object):
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "name": "human", "out_dir": str(tmp_path / "runs"), "shards": 2,
        "stages": ["seeds", "synthesize", "assemble", "export"],
        "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")},
        # an unreachable endpoint: the human task must never build or probe the model
        "llm": {"backend": "openai", "model": "none", "options": {"base_url": "http://127.0.0.1:9/v1"}},
        "synth": {"task": "human"},
        "assemble": {"n_documents": 4},
        "export": {"formats": ["trl_messages", "context_free"]},
        **extra,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return CliRunner().invoke(app, ["run", str(path)]), tmp_path / "runs" / "human"


def test_human_contexts_are_assembled_and_exported_verbatim(tmp_path: Path) -> None:
    rows = [{"id": f"q{i}", "task": "single_doc_qa", "instruction": f"Which harbour did captain {i} sail from?",
             "answer": f"Port Ilvar {i}",
             "context": f"  Captain {i} kept a log. In spring the ship left Port Ilvar {i} with a crew of {i + 3}.  "}
            for i in range(8)]
    rows.append({"id": "bare", "task": "single_doc_qa", "instruction": "Who built the mill?", "answer": "Ada"})
    result, run_dir = _run(tmp_path, rows)
    assert result.exit_code == 0, result.output
    synth = list(read_shards(run_dir / "synth"))
    assert sorted(r["id"] for r in synth) == [f"q{i}" for i in range(8)]
    by_id = {r["id"]: r for r in synth}
    assert by_id["q3"]["context"] == "Captain 3 kept a log. In spring the ship left Port Ilvar 3 with a crew of 6."
    assert by_id["q3"]["provenance"]["task"] == "human" and by_id["q3"]["attempts"] == []
    rejected = [r for p in sorted((run_dir / "synth" / "rejected").glob("*.jsonl.gz")) for r in read_jsonl(p)]
    assert [(r["id"], r["reason"]) for r in rejected] == [("bare", "no_context")]
    samples = list(read_shards(run_dir / "assemble"))
    assert len(samples) == 8
    for s in samples:
        user = s["messages"][0]["content"]
        start, end = s["gold_char_span"]
        assert user[start:end] == by_id[s["seed_id"]]["context"]  # the gold document is the human one
        assert s["n_documents"] == 4 and len(s["distractor_ids"]) == 3
        assert s["seed_id"] not in s["distractor_ids"]
    free = [json.loads(line) for p in (run_dir / "export" / "context_free").glob("*.jsonl")
            for line in p.read_text().splitlines()]
    assert len(free) == 8 and all("kept a log" not in e["messages"][0]["content"] for e in free)


def test_human_task_with_only_context_free_seeds_rejects_them_all(tmp_path: Path) -> None:
    rows = [{"id": f"q{i}", "task": "single_doc_qa", "instruction": f"Question {i}?", "answer": "A"} for i in range(3)]
    result, run_dir = _run(tmp_path, rows, stages=["seeds", "synthesize"])
    assert result.exit_code == 0, result.output
    assert list(read_shards(run_dir / "synth")) == []
    rejected = [r for p in sorted((run_dir / "synth" / "rejected").glob("*.jsonl.gz")) for r in read_jsonl(p)]
    assert sorted(r["id"] for r in rejected) == ["q0", "q1", "q2"]
    assert {r["reason"] for r in rejected} == {"no_context"}
