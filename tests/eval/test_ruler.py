"""RULER from the installed package: a tiny configuration (2 tasks, 4K, 4 samples, both template
modes) built by RULER's own generators for SmolLM2's tokenizer, checked against RULER's prepare.py
and scored against RULER's evaluate.py on the same predictions."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ctxsynth import config as cfg
from ctxsynth.errors import ConfigError
from ctxsynth.eval.compare import compare
from ctxsynth.eval.job import EvalConfig
from ctxsynth.eval.ruler import score
from ctxsynth.eval.ruler.generate import build_items, generator_env, nltk_data_dir, tokenizer_folder
from ctxsynth.eval.ruler.tasks import RulerSets, ruler_dir
from ctxsynth.eval.runner import evaluate
from ctxsynth.llm.base import RAW_ROLE, Backend, ChatRequest, ChatResult, ResultCallback
from ctxsynth.records import EvalItem
from ctxsynth.tokenize import load_tokenizer

TASKS = ["niah_single_1", "vt"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ruler_cache")


@pytest.fixture(scope="module")
def items(cache: Path) -> list[EvalItem]:
    sets = RulerSets(tasks=TASKS, lengths=[4096], num_samples=4, modes=["base", "chat"], cache_dir=str(cache))
    return build_items(sets, "smollm2", max_model_len=4096, workers=2)


def test_items_are_rulers_samples_within_the_length(items: list[EvalItem]) -> None:
    assert len(items) == 2 * 2 * 4 and len({i.id for i in items}) == len(items)
    tok = load_tokenizer("smollm2")
    prefix = tok.render_chat([{"role": "user", "content": "x"}], add_generation_prompt=True).split("x")[0][:20]
    for item in items:
        r = item.meta["ruler"]
        assert item.meta["chat"] is False and item.meta["fitted"] is True
        # RULER's own count: prompt tokens (tokenizer.tokenize) + tokens_to_generate <= the length
        assert r["tokens"] <= 4096 and len(tok.encode(item.prompt)) + item.max_new_tokens <= 4096
        assert item.prompt.startswith(prefix) == (r["mode"] == "chat")
        assert all(a in item.prompt for a in item.answers)  # the needles / chain values are in the text
        assert item.metric == "ruler_string_match_all"
    niah = [i for i in items if i.meta["ruler"]["task"] == "niah_single_1"]
    assert all(i.prompt.endswith("mentioned in the provided text is") for i in niah)  # RULER's answer prefix


def test_base_mode_equals_rulers_prepare_py(items: list[EvalItem], tmp_path: Path) -> None:
    """prepare.py itself (its shell command, its `python`) builds the same samples."""
    env = generator_env()
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    script = ruler_dir() / "data" / "prepare.py"
    subprocess.run([sys.executable, str(script), "--save_dir", str(tmp_path), "--benchmark", "synthetic",
                    "--task", "niah_single_1", "--tokenizer_path", str(tokenizer_folder("smollm2")),
                    "--tokenizer_type", "hf", "--max_seq_length", "4096", "--model_template_type", "base",
                    "--num_samples", "4"], env=env, check=True, capture_output=True)
    theirs = [json.loads(line) for line in (tmp_path / "niah_single_1" / "validation.jsonl").read_text().splitlines()]
    ours = [i for i in items if i.meta["ruler"]["mode"] == "base" and i.meta["ruler"]["task"] == "niah_single_1"]
    assert [(r["input"], r["outputs"], r["length"]) for r in theirs] == [
        (i.prompt, i.answers, i.meta["ruler"]["tokens"]) for i in ours]


def _prediction(item: EvalItem, k: int) -> str | None:
    """Predictions that exercise every branch of RULER's scoring: all, some, none of the answers,
    upper case, control characters, empty."""
    answers = item.answers
    return [" ".join(answers).upper(), "\x02" + answers[0] + "\t and more\n", "", None,
            f"none of them: {answers[0][:-1]}"][k % 5]


def _rows(items: Sequence[EvalItem]) -> list[dict[str, Any]]:
    from ctxsynth.eval import metrics

    rows = []
    for k, item in enumerate(items):
        pred = _prediction(item, k)
        rows.append({"id": item.id, "task": item.task, "metric": item.metric, "prediction": pred or "",
                     "references": item.answers, "meta": item.meta,
                     "score": metrics.score(item.metric, pred or "", item.answers, item.meta)})
    return rows


def _run_evaluate_py(items: Sequence[EvalItem], data_dir: Path) -> tuple[dict[str, float], dict[str, list[float]]]:
    """RULER's evaluate.py on the same predictions, offline: it looks for NLTK's 'punkt' (unused) and
    would download it, so it is pointed at a data folder where that name resolves."""
    nltk_dir = data_dir.parent / "nltk"
    (nltk_dir / "tokenizers").mkdir(parents=True, exist_ok=True)
    if not (nltk_dir / "tokenizers" / "punkt").exists():
        (nltk_dir / "tokenizers" / "punkt").symlink_to(nltk_data_dir() / "tokenizers" / "punkt_tab")
    data_dir.mkdir(parents=True)
    for task in TASKS:
        with (data_dir / f"{task}.jsonl").open("w") as f:
            for k, item in enumerate(items):
                if item.meta["ruler"]["task"] == task:
                    f.write(json.dumps({"index": item.meta["ruler"]["index"], "input": item.prompt,
                                        "outputs": item.answers, "pred": _prediction(item, k), "others": {}}) + "\n")
    env = {**os.environ, "NLTK_DATA": str(nltk_dir)}
    done = subprocess.run([sys.executable, "evaluate.py", "--data_dir", str(data_dir), "--benchmark", "synthetic"],
                          cwd=ruler_dir() / "eval", env=env, capture_output=True, text=True, check=True)
    assert "Error loading" not in done.stdout + done.stderr
    table = list(csv.reader((data_dir / "summary.csv").open()))
    summary = {task: float(s) for task, s in zip(table[1][1:], table[2][1:], strict=True)}
    return summary, json.loads((data_dir / "per_sample_scores.json").read_text())


@pytest.mark.parametrize("mode", ["base", "chat"])
def test_scores_equal_rulers_evaluate_py(items: list[EvalItem], tmp_path: Path, mode: str) -> None:
    mine = [i for i in items if i.meta["ruler"]["mode"] == mode]
    rows = _rows(mine)
    summary, per_sample = _run_evaluate_py(mine, tmp_path / "pred")
    block = score.summarize(rows)[mode]
    for task in TASKS:
        task_rows = [r for r in rows if r["meta"]["ruler"]["task"] == task]
        assert block["tasks"][task]["4096"]["score"] == summary[task]
        assert [r["score"] * 100 for r in task_rows] == pytest.approx(per_sample[task], abs=1e-9)
    assert 0 < summary["niah_single_1"] < 100  # the predictions hit both ends of the metric


def test_effective_length_is_rulers_rule() -> None:
    assert score.effective_length({4096: 90.0, 8192: 86.0, 16384: 85.6}) == {"length": 8192, "beyond": False, "gaps": []}
    assert score.effective_length({4096: 90.0, 8192: 86.0})["beyond"] is True
    assert score.effective_length({4096: 50.0, 8192: 40.0})["length"] is None
    assert score.effective_length({4096: 80.0, 8192: 90.0}) == {"length": 8192, "beyond": True, "gaps": [4096]}


def test_postprocess_as_ruler() -> None:
    assert score.postprocess_pred(None) == ""
    assert score.postprocess_pred("  a\x01b\tc \n") == "a\nb\nc"


class _NeedleReader(Backend):
    """A rule-based reader of plain-text RULER prompts: answers with the value stated for the key
    the question asks about (NIAH) and nothing useful otherwise; `blind` answers nothing."""

    name = "needle-reader"
    raw_prompts = True

    def __init__(self, blind: bool = False) -> None:
        super().__init__(model="blind" if blind else "reader")
        self.blind = blind

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        out = []
        for i, req in enumerate(requests):
            assert req.messages[0]["role"] == RAW_ROLE
            prompt = req.messages[0]["content"]
            key = re.search(r"for ([\w-]+) mentioned in the provided text\?", prompt)
            value = re.search(rf"for {re.escape(key.group(1))} is: (\d+)", prompt) if key and not self.blind else None
            res = ChatResult(f" {value.group(1)}." if value else " I do not know.", "stop",
                             usage={"prompt_tokens": 0, "completion_tokens": 3})
            out.append(res)
            if on_result:
                on_result(i, res)
        return out


def test_eval_runs_ruler_items_and_compare_pairs_them(items: list[EvalItem], tmp_path: Path) -> None:
    runs = []
    for name, backend in (("blind", _NeedleReader(blind=True)), ("reader", _NeedleReader())):
        summary = evaluate(items, backend, tokenizer="smollm2", max_model_len=4096, out_dir=tmp_path / name)
        runs.append(tmp_path / name)
        block = summary["ruler"]["base"]
        assert block["tasks"]["niah_single_1"]["4096"]["n"] == 4 and block["average"]["4096"]["n_tasks"] == 2
        assert block["threshold"] == 85.6 and not block["complete"]
        text = (tmp_path / name / "scores.md").read_text()
        assert "template mode base: no chat template" in text and "template mode chat:" in text
        assert "Effective length" in text
    assert summary["ruler"]["chat"]["tasks"]["niah_single_1"]["4096"]["score"] == 100.0
    result = compare(runs)
    assert "paired differences" in result.markdown
    assert re.search(r"\| niah_single_1 \| 4K \| 4 \| 0\.0 \| 100\.0 \| \+100\.00 \[\+100\.0, \+100\.0\] \* \|",
                     result.markdown)


def test_the_eval_jobs_backend_takes_plain_text() -> None:
    """`ctxsynth eval` puts the backend behind the circuit breaker, which must not hide raw_prompts."""
    from ctxsynth.eval.job import ModelConfig

    backend = ModelConfig(backend="transformers", model="smollm2-135m-instruct").build(max_consecutive_failures=3)
    assert backend.raw_prompts is True  # type: ignore[attr-defined]
    backend.close()


def test_config_section(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("name: r\nmodel: {backend: fake, model: x, tokenizer: smollm2, max_model_len: 8192}\n"
                    "ruler: {tasks: [all], lengths: [4096], num_samples: 2}\n")
    config = cfg.load(EvalConfig, path)
    assert len(config.ruler.tasks) == 13 and config.ruler.modes == ["base", "chat"]
    with pytest.raises(ConfigError, match="unknown"):
        cfg.load(EvalConfig, path, ["ruler.tasks=[niah_single_9]"])
    with pytest.raises(ConfigError, match="ruler.modes"):
        cfg.load(EvalConfig, path, ["ruler.modes=[chatty]"])
    assert not cfg.load(EvalConfig, path, ["ruler.tasks=[]"]).ruler.tasks  # no RULER
    with pytest.raises(ConfigError, match="max_model_len"):
        build_items(RulerSets(tasks=["vt"], lengths=[16384]), "smollm2", max_model_len=8192)
    with pytest.raises(ConfigError, match="tiktoken"):
        build_items(RulerSets(tasks=["vt"], lengths=[4096]), "tiktoken:cl100k_base")


def test_ruler_verb_writes_items_that_eval_reads_back(items: list[EvalItem], cache: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ctxsynth.cli import app
    from ctxsynth.eval.job import collect_items

    path = tmp_path / "r.yaml"
    path.write_text(f"name: r\nmodel: {{backend: fake, model: x, tokenizer: smollm2, max_model_len: 4096}}\n"
                    f"ruler: {{tasks: [niah_single_1, vt], lengths: [4096], num_samples: 4, cache_dir: {cache}}}\n")
    result = CliRunner().invoke(app, ["ruler", str(path), "--out", str(tmp_path / "items")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "items").glob("*.jsonl")) == [
        "base_4096_niah_single_1.jsonl", "base_4096_vt.jsonl", "chat_4096_niah_single_1.jsonl", "chat_4096_vt.jsonl"]
    config = cfg.from_dict(EvalConfig, {"name": "x", "items": [str(tmp_path / "items")]})
    assert sorted(i.id for i in collect_items(config, tmp_path)) == sorted(i.id for i in items)
    path.write_text("name: r\nruler: {tasks: []}\n")
    assert CliRunner().invoke(app, ["ruler", str(path)]).exit_code == 2


def test_card_section_shows_the_ruler_tables(items: list[EvalItem], tmp_path: Path) -> None:
    from ctxsynth.eval.ruler.report import card_section

    for name, backend in (("base", _NeedleReader(blind=True)), ("trained", _NeedleReader())):
        evaluate(items, backend, tokenizer="smollm2", max_model_len=4096, out_dir=tmp_path / "run" / "eval" / name)
    text = "\n".join(card_section(tmp_path / "run"))
    assert text.startswith("## RULER") and "### RULER base, template mode base" in text
    assert "### RULER trained - base, template mode chat" in text
    assert card_section(tmp_path / "empty") == []


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_smollm2_on_the_ci_configuration(items: list[EvalItem], tmp_path: Path) -> None:
    """The real model through the transformers backend (plain-text prompts), one sample per task
    and mode (4K prompts are slow on two CPU cores): every sample answered, counted as sent."""
    from ctxsynth.llm import BACKENDS

    first = [i for i in items if i.meta["ruler"]["index"] == 0]
    backend = BACKENDS.get("transformers")(model="smollm2-135m-instruct", batch_size=2)
    summary = evaluate(first, backend, tokenizer="smollm2", max_model_len=4096, out_dir=tmp_path / "smol")
    rows = [json.loads(line) for line in (tmp_path / "smol" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == len(first) == 4 and not any(r["error"] for r in rows)
    assert all(r["truncated_tokens"] == 0 and r["prompt_tokens"] == r["backend_prompt_tokens"] for r in rows)
    for mode in ("base", "chat"):
        cells = summary["ruler"][mode]["tasks"]
        assert all(0 <= cells[t]["4096"]["score"] <= 100 for t in TASKS)
