"""The evaluation runner end to end with a real (tiny, rule-based) backend: truncation, files,
NIAH grid scoring, heatmaps, caching and run comparison."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from ctxsynth.eval.compare import compare
from ctxsynth.eval.runner import evaluate
from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, ResultCallback
from ctxsynth.records import EvalItem
from ctxsynth.tokenize import load_tokenizer

PNG = b"\x89PNG\r\n\x1a\n"


class NumberReader(Backend):
    """Answers with every 7-digit number in the last user message; counts what it is sent."""

    name = "number-reader"

    def __init__(self) -> None:
        super().__init__("reader")
        self.sent: list[ChatRequest] = []

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        self.sent.extend(requests)
        out = []
        for i, r in enumerate(requests):
            found = re.findall(r"\d{7}", r.messages[-1]["content"])
            result = ChatResult(" ".join(found) or "none", "stop", {"prompt_tokens": 0, "completion_tokens": 1})
            out.append(result)
            if on_result:
                on_result(i, result)
        return out


def _niah_items(variant: str) -> list[EvalItem]:
    filler = " ".join(f"Sentence {k} is filler." for k in range(300))
    items = []
    for length in (50, 300):
        for depth in (0.0, 0.5, 1.0):
            for j in range(2):
                needle = f"The magic number is {1000000 + 10 * length + int(depth * 4) + j}."
                words = filler.split()[: length * 2]
                cut = int(depth * len(words))
                prompt = " ".join([*words[:cut], needle, *words[cut:]]) + "\nWhat is the magic number?"
                items.append(EvalItem(id=f"{variant}-{length}-{depth}-{j}", task=f"niah_{variant}", prompt=prompt,
                                      answers=[needle.split()[-1].rstrip(".")], metric="all_substring",
                                      max_new_tokens=16, meta={"variant": variant, "length": length, "depth": depth}))
    return items


def test_runner_truncates_in_the_middle_scores_the_grid_and_writes_the_run(tmp_path: Path) -> None:
    tok = load_tokenizer("smollm2")
    items = _niah_items("single") + _niah_items("multi_value")
    backend = NumberReader()
    summary = evaluate(items, backend, tokenizer=tok, max_model_len=512, truncation="middle",
                       out_dir=tmp_path / "base", cache=tmp_path / "cache.sqlite")
    rows = [json.loads(line) for line in (tmp_path / "base" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == len(items)
    for row in rows:
        assert row["prompt_tokens"] + 16 <= 512
        assert (row["truncated_tokens"] > 0) == (row["meta"]["length"] == 300)
        assert set(row) >= {"id", "prediction", "references", "score", "prompt_tokens", "truncated_tokens"}
    grid = summary["niah"]["single"]
    assert grid["lengths"] == [50, 300] and grid["depths"] == [0.0, 0.5, 1.0]
    # the middle cut removes the needle at depth 0.5 of the long prompts only
    assert grid["scores"] == [[100.0, 100.0], [100.0, 0.0], [100.0, 100.0]]
    assert summary["run"]["n_truncated"] == 12 and summary["run"]["decoding"].startswith("greedy")
    assert all(r.params.temperature == 0.0 and r.params.max_tokens == 16 for r in backend.sent)
    assert json.loads((tmp_path / "base" / "scores.json").read_text())["niah"]["single"]["mean"] == grid["mean"]
    assert "| 0.5 | 100.00 | 0.00 |" in (tmp_path / "base" / "scores.md").read_text()
    png = tmp_path / "base" / "plots" / "niah_single.png"
    assert png.read_bytes().startswith(PNG) and png.stat().st_size > 5000

    rerun = NumberReader()
    again = evaluate(items, rerun, tokenizer=tok, max_model_len=512, out_dir=tmp_path / "base2",
                     cache=tmp_path / "cache.sqlite")
    assert rerun.sent == [] and again["run"]["n_cached"] == len(items)

    evaluate(items, NumberReader(), tokenizer=tok, max_model_len=4096, out_dir=tmp_path / "tuned")
    result = compare([tmp_path / "base", tmp_path / "tuned"], out_dir=tmp_path / "cmp")
    assert "| 300 | 66.67 | 100.00 |" in result.markdown
    names = sorted(p.name for p in result.plots)
    assert names == ["niah_accuracy_vs_length.png", "niah_diff_multi_value_tuned.png", "niah_diff_single_tuned.png"]
    assert all(p.read_bytes().startswith(PNG) for p in result.plots)
    assert (tmp_path / "cmp" / "comparison.md").read_text() == result.markdown


def test_runner_without_tokenizer_sends_prompts_unchanged(tmp_path: Path) -> None:
    items = [EvalItem(id="q1", task="builtin_squad", prompt="The code is 1234567. What is the code?",
                      answers=["1234567"], metric="qa_f1", max_new_tokens=8, meta={"category": "single-doc"})]
    backend = NumberReader()
    summary = evaluate(items, backend, tokenizer=None, max_model_len=None, out_dir=tmp_path / "run")
    assert backend.sent[0].messages[-1]["content"] == items[0].prompt
    assert summary["tasks"]["builtin_squad"] == {"score": 100.0, "n": 1}
    assert summary["categories"] == {"single-doc": 100.0}
