"""The whole path through the CLI: seeds -> synthesize -> assemble -> export -> report, against the
local OpenAI-protocol server, ending in trainer-ready files and a dataset card."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.io import read_shards
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer


def test_full_pipeline_writes_budgeted_samples_exports_and_report(tmp_path: Path) -> None:
    rows = [{"id": f"q{i}", "instruction": f"Which harbour did captain number {i} sail from?",
             "answer": f"Port Ilvar {i}", "task": "single_doc_qa"} for i in range(12)]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with OpenAIServer(context_writer) as server:
        config = {
            "name": "full", "out_dir": str(tmp_path / "runs"), "shards": 2,
            "stages": ["seeds", "synthesize", "assemble", "export", "report"],
            "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")},
            "llm": {"backend": "openai", "model": "m", "max_tokens": 1024, "options": {"base_url": server.url}},
            "synth": {"target_words": 120},
            "assemble": {"target_tokens": 1024, "n_documents": 10},
            "export": {"formats": ["trl_messages", "llamafactory", "context_free"]},
        }
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "full"
    samples = list(read_shards(run_dir / "assemble"))
    assert len(samples) == 12
    for s in samples:
        assert 0.98 * 1024 <= s["tokens"]["total"] <= 1024
        assert s["messages"][1]["content"] == s["answer"]
    lines = (run_dir / "export" / "trl_messages").glob("*.jsonl")
    exported = [json.loads(line) for f in lines for line in f.read_text().splitlines()]
    assert len(exported) == 12 and all(len(e["messages"]) == 2 for e in exported)
    assert (run_dir / "export" / "llamafactory" / "dataset_info.json").exists()
    assert (run_dir / "report" / "README.md").exists() and list((run_dir / "report").glob("*.png"))
    assert "12 of 12 contexts passed" in result.output


def test_filter_stage_drops_ill_posed_and_duplicate_seeds_before_synthesis(tmp_path: Path) -> None:
    questions = ["Which harbour did the whaler Serinda leave from in spring?", "Who designed the Oakvale railway bridge?",
                 "What year did the Marrow Hill observatory open?", "How many bells hang in the Tessel chapel tower?",
                 "Which river feeds the lake beside Dunmore village?", "What colour is the flag of the Ivren guild?"]
    rows = [{"id": f"q{i}", "instruction": q, "answer": f"Answer {chr(65 + i)}", "task": "single_doc_qa"}
            for i, q in enumerate(questions)]
    rows.append({"id": "dup", "instruction": rows[0]["instruction"], "answer": rows[0]["answer"], "task": "single_doc_qa"})
    rows.append({"id": "short", "instruction": "Why?", "answer": "Because", "task": "single_doc_qa"})
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with OpenAIServer(context_writer) as server:
        config = {
            "name": "filtered", "out_dir": str(tmp_path / "runs"), "stages": ["seeds", "filter", "synthesize"],
            "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")},
            "filters": {"closed_book": {"enabled": False}, "reliance": {"enabled": False}},
            "llm": {"backend": "openai", "model": "m", "max_tokens": 1024, "options": {"base_url": server.url}},
            "synth": {"target_words": 120},
        }
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        result = CliRunner().invoke(app, ["run", str(path)])
        assert result.exit_code == 0, result.output
        assert server.hits == 6  # only the surviving seeds reached the generator
    run_dir = tmp_path / "runs" / "filtered"
    rejected = {r["id"]: r["reason"] for r in read_shards(run_dir / "filter" / "rejected")}
    assert rejected == {"dup": "duplicate_exact", "short": "instruction_too_short"}
    assert sorted(r["id"] for r in read_shards(run_dir / "synth")) == [f"q{i}" for i in range(6)]
