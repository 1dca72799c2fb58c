"""`ctxsynth estimate`: tokens counted from the real prompts, hand-checked arithmetic, no request sent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ctxsynth import config as cfg
from ctxsynth.cli import app
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.estimate import MESSAGE_OVERHEAD, estimate_run, render
from ctxsynth.pipeline.run import Run
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
        est, judge = estimate_run(run, stream_tps=50.0)
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
    # no yes/no-like answer: no judge request expected, but any attempt's short answer may need one
    assert (judge.stage, judge.requests, judge.requests_max) == ("synthesize (support judge)", 0, 30)
    assert (judge.output_tokens, judge.output_tokens_max) == (0, 30 * 16)


def test_estimate_counts_support_judge_requests_for_yes_no_answers(tmp_path):
    """3 of 10 seeds answer yes / no / unanswerable: 3 judge requests expected, each with the judge
    prompt around an expected-length document; 30 at most; none with `non_extractive: string`."""
    with OpenAIServer(context_writer) as server:
        data = _config(tmp_path, server.url)
        rows = [json.loads(line) for line in (tmp_path / "seeds.jsonl").read_text().splitlines()]
        for row, answer in zip(rows, ["yes", "No", "unanswerable"], strict=False):
            row["answer"] = answer
        (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        run = Run(cfg.from_dict(RunConfig, data))
        _, judge = estimate_run(run, stream_tps=50.0)
        data["verify"] = {"non_extractive": "string"}
        assert len(estimate_run(Run(cfg.from_dict(RunConfig, data)))) == 1
        assert server.hits == 0
    from ctxsynth.records import Seed
    from ctxsynth.verify.judge import SupportJudge

    tok = load_tokenizer("tiktoken:o200k_base")
    prompt = SupportJudge(run.config.verify)
    around = [sum(len(tok.encode(m["content"])) + MESSAGE_OVERHEAD
                  for m in prompt.request(r["id"], 0, "", r["instruction"], r["answer"]).messages) for r in rows[:3]]
    assert Seed(**rows[0]).answers == ["yes"]
    assert (judge.requests, judge.requests_max) == (3, 30)
    assert judge.input_tokens == sum(around) + 3 * (math.ceil(1.35 * 200) + 16)
    assert (judge.output_tokens, judge.output_tokens_max) == (3 * 16, 30 * 16)
    assert math.isclose(judge.cost_usd, judge.input_tokens * 2e-6 + 48 * 8e-6)


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


def test_a_human_context_run_sends_nothing_and_the_estimate_says_so(tmp_path):
    """synth.task: human asks no model: no synthesis or judge estimate (it used to call the task's
    prompt, which the human task does not have, and crash)."""
    rows = [{"id": f"q{i}", "instruction": f"Q{i}?", "answer": "A", "context": "A paragraph.", "task": "single_doc_qa"}
            for i in range(3)]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {"name": "human", "out_dir": str(tmp_path / "runs"), "stages": ["seeds", "synthesize"],
            "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")}, "synth": {"task": "human"}}
    run = Run(cfg.from_dict(RunConfig, data))
    assert estimate_run(run) == []
    assert render([], run)[-1] == "no stage of this run sends generation requests: nothing to pay for"


def test_the_human_task_says_needs_llm_is_false_and_refuses_a_prompt() -> None:
    """The guard behind the test above: a caller that forgets `needs_llm` fails loudly, naming the check."""
    import pytest

    from ctxsynth.records import Seed
    from ctxsynth.synth.human import HumanContexts
    from ctxsynth.synth.tasks import needs_llm

    task = HumanContexts()
    assert not needs_llm(task)
    with pytest.raises(RuntimeError, match="needs_llm"):
        task.prompt(Seed(id="s", task="qa", instruction="q?", answer="a", context="a text"))
