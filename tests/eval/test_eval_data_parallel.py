"""Data-parallel evaluation: the transformers backend with `devices: 2` (two replica processes) gives
the predictions and scores of one process, in item order.

The real embedded SmolLM2-135M-Instruct on CPU, greedy, batches of two, so five items make three
batches that the two replicas share; the predictions are merged back in item order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctxsynth.eval.runner import evaluate
from ctxsynth.llm.hf_backend import TransformersBackend
from ctxsynth.records import EvalItem

FACTS = [("The code is 4417.", "What is the code?", "4417"), ("Mara lives in Oslo.", "Where does Mara live?", "Oslo"),
         ("The box is red.", "What colour is the box?", "red"), ("Tom is 31 years old.", "How old is Tom?", "31"),
         ("The train leaves at noon.", "When does the train leave?", "noon")]
ITEMS = [EvalItem(id=f"q{i}", task="builtin_squad", prompt=f"{fact} {question} Answer briefly.", answers=[answer],
                  metric="qa_f1", max_new_tokens=6, meta={"category": "single-doc"})
         for i, (fact, question, answer) in enumerate(FACTS)]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.slow  # three model loads, two of them in worker processes (minutes on the shared 2-core box)
def test_two_eval_processes_give_the_predictions_and_scores_of_one(tmp_path: Path) -> None:
    one = evaluate(ITEMS, TransformersBackend(device="cpu", batch_size=2), tokenizer="smollm2",
                   max_model_len=2048, out_dir=tmp_path / "one")
    pooled = TransformersBackend(device="cpu", batch_size=2, devices=2)
    try:
        two = evaluate(ITEMS, pooled, tokenizer="smollm2", max_model_len=2048, out_dir=tmp_path / "two")
    finally:
        pooled.close()
    rows_one, rows_two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert [r["id"] for r in rows_two] == ["q0", "q1", "q2", "q3", "q4"]
    assert all(r["prediction"] and not r["error"] for r in rows_one)
    keys = ("id", "prediction", "score", "prompt_tokens", "completion_tokens", "finish_reason")
    assert [{k: r[k] for k in keys} for r in rows_two] == [{k: r[k] for k in keys} for r in rows_one]
    for summary in (one, two):
        summary["run"].pop("wall_seconds")
    assert two == {**one, "run": {**one["run"], "name": "two"}}
