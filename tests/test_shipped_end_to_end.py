"""configs/end_to_end.yaml as shipped runs from seeds to a trained, evaluated model and a page.

The fast test runs the shipped file with overrides that only shrink it and swap the generator for
the local OpenAI-protocol server (the paper's prompt, no prefill): the real seed filter, corpus
distractors, export, training of the embedded SmolLM2 and evaluation of trained and base model.
The slow test runs the file exactly as shipped (SmolLM2 as generator too)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.io import read_shards
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer
from ctxsynth.view import build_view

pytest.importorskip("trl")
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "end_to_end.yaml"


def _check_run(run_dir: Path, output: str) -> None:
    samples = list(read_shards(run_dir / "assemble"))
    assert samples and not list(read_shards(run_dir / "assemble" / "rejected"))  # corpus distractors: none exhausted
    assert all(s["distractor_ids"] and all(i.startswith("corpus:wiki:") for i in s["distractor_ids"]) for s in samples)
    rows = (run_dir / "export" / "trl_messages" / "data.jsonl").read_text().splitlines()
    assert len(rows) == len(samples)
    assert json.loads((run_dir / "train" / "summary.json").read_text())["global_step"] >= 1
    comparison = json.loads((run_dir / "eval" / "comparison.json").read_text())
    assert comparison["runs"] == {"base": "base", "trained": "trained"} and comparison["overall"]["n"] >= 1
    assert "trained vs base model" in output
    page = build_view(run_dir)
    evaluation = (page.parent / "index_files" / "data" / "eval.js").read_text()
    payload = json.loads(evaluation[len("CTXV.evaluation("):-len(");\n")])
    assert payload["models"] == ["trained", "base"] and len(payload["items"]) == comparison["overall"]["n"]
    assert all("trained" in item and "base" in item for item in payload["items"])


def _cleanup(run_dir: Path) -> None:
    shutil.rmtree(run_dir / "train", ignore_errors=True)  # checkpoints with optimizer state: ~1 GB


@pytest.mark.timeout(1800)  # ~160 CPU-seconds; a shared, loaded box stretches that to 10+ min of wall time
def test_the_shipped_end_to_end_config_runs_to_its_end_small(tmp_path: Path) -> None:
    """About 160 CPU-seconds (train 1 step, 2 eval items per model): 1-2 min on a quiet 2-core box."""
    with OpenAIServer(context_writer) as server:
        overrides = [f"out_dir={tmp_path}", "seeds.limit=6", "llm.backend=openai", "llm.model=m",
                     f"llm.options={{base_url: {server.url}}}", "llm.max_tokens=512", "synth.prefill=false",
                     "synth.prompt_file=null", "synth.target_words=60", "assemble.target_tokens=512",
                     "train.max_steps=1", "train.save_steps=1", "train.data.max_length=512",
                     "eval.builtin.hotpotqa=2", "eval.model.max_model_len=768"]
        result = CliRunner().invoke(app, ["run", str(CONFIG), *overrides])
    try:
        assert result.exit_code == 0, result.output
        _check_run(tmp_path / "end_to_end", result.output)
    finally:
        _cleanup(tmp_path / "end_to_end")


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 770 CPU-seconds measured; 30 min wall on a loaded 2-core box
def test_the_shipped_end_to_end_config_runs_to_its_end_as_shipped(tmp_path: Path) -> None:
    """The file as shipped, SmolLM2 generating: see docs/view.md for its timings."""
    result = CliRunner().invoke(app, ["run", str(CONFIG), f"out_dir={tmp_path}"])
    try:
        assert result.exit_code == 0, result.output
        _check_run(tmp_path / "end_to_end", result.output)
    finally:
        _cleanup(tmp_path / "end_to_end")
