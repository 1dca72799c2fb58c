"""`ctxsynth estimate`: tokens counted from the real prompts, hand-checked arithmetic, no request sent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ctxsynth import config as cfg
from ctxsynth.cli import app
from ctxsynth.estimate import MESSAGE_OVERHEAD, estimate_run
from ctxsynth.runner import Run, RunConfig
from ctxsynth.synth.tasks import build_task
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer
from ctxsynth.tokenize import load_tokenizer

PRICES = {"m": {"input_per_mtok": 2.0, "output_per_mtok": 8.0}}


def _config(tmp_path: Path, url: str) -> dict:
    rows = [{"id": f"q{i}", "instruction": f"Which harbour did captain number {i} sail from?",
             "answer": f"Port Ilvar {i}", "task": "single_doc_qa"} for i in range(10)]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"name": "est", "out_dir": str(tmp_path / "runs"), "stages": ["seeds", "synthesize"],
            "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")},
            "llm": {"backend": "openai", "model": "m", "max_tokens": 1000, "options": {"base_url": url,
                                                                                       "max_concurrency": 4}},
            "synth": {"target_words": 200, "max_attempts": 3}, "report": {"prices": PRICES}}


def test_estimate_counts_the_real_prompts_and_prices_them(tmp_path):
    with OpenAIServer(context_writer) as server:
        data = _config(tmp_path, server.url)
        run = Run(cfg.from_dict(RunConfig, data))
        [est] = estimate_run(run, stream_tps=50.0)
        assert server.hits == 0
    task, tok = build_task(run.config.synth), load_tokenizer("tiktoken:o200k_base")
    seeds = [json.loads(line) for line in (tmp_path / "seeds.jsonl").read_text().splitlines()]
    from ctxsynth.records import Seed

    messages = [m for s in seeds for m in task.prompt(Seed(**s))]
    tokens_in = sum(len(tok.encode(m["content"])) + MESSAGE_OVERHEAD for m in messages)
    expected_out = math.ceil(1.35 * 200) + 16  # 286 per request
    assert (est.requests, est.requests_max) == (10, 30)
    assert (est.input_tokens, est.input_tokens_max) == (tokens_in, 3 * tokens_in)
    assert (est.output_tokens, est.output_tokens_max) == (10 * expected_out, 30 * 1000)
    assert math.isclose(est.cost_usd, tokens_in * 2e-6 + 10 * expected_out * 8e-6)
    assert math.isclose(est.cost_usd_max, 3 * tokens_in * 2e-6 + 30_000 * 8e-6)
    assert math.isclose(est.seconds, 3 * (expected_out / 50.0 + 1.0))  # ceil(10 / 4) rounds of requests


def test_estimate_command_prints_per_stage_lines_and_json(tmp_path):
    with OpenAIServer(context_writer) as server:
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(_config(tmp_path, server.url)))
        text = CliRunner().invoke(app, ["estimate", str(path), "llm.max_cost_usd=0.5"])
        as_json = CliRunner().invoke(app, ["estimate", str(path), "--json"])
        assert server.hits == 0
    assert text.exit_code == 0, text.output
    out = " ".join(text.output.split())
    assert "synthesize [m]: 10 requests expected (at most 30)" in out and "time ~0.3 min" in out
    assert "llm.max_cost_usd = 0.5" in out
    assert json.loads(as_json.stdout)[0]["requests"] == 10
