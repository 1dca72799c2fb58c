"""llm.max_cost_usd stops a run cleanly when the spend reaches it, and a rerun with more budget
resumes without paying twice (against the real local OpenAI-protocol server)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer

PRICES = {"m": {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}}  # $0.001 a token: easy arithmetic


def _config(tmp_path: Path, url: str, limit: float) -> Path:
    rows = [{"id": f"q{i}", "instruction": f"Which harbour did captain number {i} sail from?",
             "answer": f"Port Ilvar {i}", "task": "single_doc_qa"} for i in range(12)]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"name": "budget", "out_dir": str(tmp_path / "runs"), "stages": ["seeds", "synthesize"],
              "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")},
              "llm": {"backend": "openai", "model": "m", "max_tokens": 1024, "max_cost_usd": limit,
                      "options": {"base_url": url, "max_concurrency": 4}},
              "synth": {"target_words": 120}, "report": {"prices": PRICES}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_spend_limit_stops_then_resumes_without_paying_twice(tmp_path):
    state = tmp_path / "runs" / "budget" / "_state"
    with OpenAIServer(context_writer) as server:
        first = CliRunner().invoke(app, ["run", str(_config(tmp_path, server.url, 0.1))])
        assert first.exit_code == 2, first.output
        assert "spend limit reached" in " ".join(first.output.split())
        assert server.hits == 4  # one chunk (max_concurrency) passes the limit; nothing after it is sent
        assert not (state / "synthesize" / "DONE").exists()
        ledger = json.loads((state / "spend.json").read_text())
        assert ledger["requests"] == 4 and ledger["usd"] >= 0.1

        again = CliRunner().invoke(app, ["run", str(_config(tmp_path, server.url, 0.1))])
        assert again.exit_code == 2 and server.hits == 4  # the same limit: stops before sending anything

        more = CliRunner().invoke(app, ["run", str(_config(tmp_path, server.url, 1000.0)), "--overwrite"])
        assert more.exit_code == 0, more.output
        assert server.hits == 12  # the first 4 answers came from the cache
        assert "12 of 12 contexts passed" in more.output


def test_spend_limit_needs_a_price(tmp_path):
    with OpenAIServer(context_writer) as server:
        path = _config(tmp_path, server.url, 1.0)
        data = yaml.safe_load(path.read_text())
        data["report"]["prices"] = {}
        path.write_text(yaml.safe_dump(data))
        result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "llm.max_cost_usd needs the price of 'm'" in " ".join(result.output.split())
