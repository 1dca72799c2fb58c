"""End to end: a tiny NIAH grid (2 lengths x 2 depths x 2 items) built by ctxsynth.niah, evaluated
through the transformers backend with SmolLM2 and through the local OpenAI-protocol server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ctxsynth.eval.runner import evaluate
from ctxsynth.llm import BACKENDS
from ctxsynth.niah.build import build_niah
from ctxsynth.niah.config import NiahConfig, TestSpec
from ctxsynth.records import EvalItem
from ctxsynth.testing.openai_server import OpenAIServer, Reply

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def grid_items(tmp_path_factory: pytest.TempPathFactory) -> list[EvalItem]:
    out = tmp_path_factory.mktemp("niah")
    config = NiahConfig(variants=["single"], train=None,
                        test=TestSpec(lengths=[256, 512], depths=[0.0, 1.0], samples_per_cell=2, max_new_tokens=24))
    build_niah(config, out)
    rows = [json.loads(line) for line in (out / "test" / "single.jsonl").read_text().splitlines()]
    return [EvalItem(**row) for row in rows]


def _check_run(summary: dict[str, Any], out: Path, n: int) -> None:
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == n and not any(r["error"] for r in rows)
    assert all(r["prompt_tokens"] <= 512 + 64 and r["truncated_tokens"] == 0 for r in rows)
    grid = summary["niah"]["single"]
    assert grid["lengths"] == [256, 512] and grid["depths"] == [0.0, 1.0]
    assert grid["n"] == [[2, 2], [2, 2]]
    assert all(0 <= s <= 100 for row in grid["scores"] for s in row)
    assert (out / "plots" / "niah_single.png").read_bytes().startswith(PNG)
    assert (out / "scores.md").read_text().startswith("# Evaluation")


@pytest.mark.slow
def test_smollm2_transformers_backend_on_a_tiny_grid(grid_items: list[EvalItem], tmp_path: Path) -> None:
    backend = BACKENDS.get("transformers")(model="smollm2-135m-instruct", batch_size=4)
    summary = evaluate(grid_items, backend, tokenizer="smollm2", max_model_len=8192, out_dir=tmp_path / "smol")
    _check_run(summary, tmp_path / "smol", len(grid_items))
    assert summary["run"]["backend"]["backend"] == "transformers"
    # the evaluator counts the prompt exactly as the backend tokenises it (chat template included)
    rows = [json.loads(line) for line in (tmp_path / "smol" / "predictions.jsonl").read_text().splitlines()]
    assert all(r["prompt_tokens"] == r["backend_prompt_tokens"] for r in rows)


def _reads_the_needle(body: dict[str, Any]) -> Reply:
    """Answers with the value stated for the key the question asks about."""
    prompt = body["messages"][-1]["content"]
    key = re.search(r"special magic \w+ for ([\w-]+)", prompt.strip().splitlines()[-1])
    value = re.search(rf"for {re.escape(key.group(1))} is:? *([\w-]+)", prompt) if key else None
    return Reply(value.group(1) if value else "I do not know")


def test_openai_protocol_server_on_a_tiny_grid(grid_items: list[EvalItem], tmp_path: Path) -> None:
    with OpenAIServer(_reads_the_needle) as server:
        backend = BACKENDS.get("openai")("test-model", base_url=server.url, max_concurrency=4)
        summary = evaluate(grid_items, backend, tokenizer="smollm2", max_model_len=8192, out_dir=tmp_path / "srv")
        assert server.hits == len(grid_items)
    _check_run(summary, tmp_path / "srv", len(grid_items))
    assert summary["niah"]["single"]["mean"] == 100.0
