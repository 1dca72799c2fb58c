"""`ctxsynth eval` and `ctxsynth compare` end to end: an eval config naming the held-out HotpotQA
built-in set, a model behind the local OpenAI-protocol server, result files and a comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.eval.builtin import hotpotqa_items
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.scripting import Reply


def test_eval_and_compare_commands_write_scores_and_tables(tmp_path: Path) -> None:
    items = hotpotqa_items(3, seed=0)
    oracle = {item.prompt.split("Question:")[-1].strip()[:80]: item.answers[0] for item in items}

    def responder(body: dict) -> Reply:  # model "oracle" knows every answer, model "guess" none
        prompt = body["messages"][-1]["content"]
        for key, answer in oracle.items():
            if key in prompt and body["model"] == "oracle":
                return Reply(answer)
        return Reply("I do not know")

    runner = CliRunner()
    with OpenAIServer(responder) as server:
        for name in ("oracle", "guess"):
            config = {"name": name, "out_dir": str(tmp_path / "eval"), "builtin": {"hotpotqa": 3},
                      "model": {"backend": "openai", "model": name,
                                "options": {"base_url": server.url, "max_retries": 0},
                                "tokenizer": "smollm2", "max_model_len": 4096}}
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config))
            result = runner.invoke(app, ["eval", str(path)])
            assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "eval" / "oracle" / "scores.json").read_text())
    assert scores["tasks"]["builtin_hotpotqa"]["score"] == 100.0
    guessed = json.loads((tmp_path / "eval" / "guess" / "scores.json").read_text())
    assert guessed["tasks"]["builtin_hotpotqa"]["score"] == 0.0
    rows = [json.loads(line) for line in (tmp_path / "eval" / "oracle" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["prompt_tokens"] <= 4096 for r in rows)
    compared = runner.invoke(app, ["compare", str(tmp_path / "eval" / "oracle"), str(tmp_path / "eval" / "guess"),
                                   "--out", str(tmp_path / "cmp")])
    assert compared.exit_code == 0, compared.output
    assert "oracle" in compared.output and "guess" in compared.output
    assert (tmp_path / "cmp" / "comparison.md").exists()


def test_write_items_freezes_a_builtin_set_that_items_reads_back_unchanged(tmp_path: Path) -> None:
    """--write-items writes the exact items the config would evaluate; `items:` evaluates that file
    on a machine without the asset packages and gets the same prompts (checked here by identity)."""
    from ctxsynth.eval.job import EvalConfig, collect_items

    config = {"name": "frozen", "out_dir": str(tmp_path / "eval"), "builtin": {"hotpotqa": 4}}
    path = tmp_path / "builtin.yaml"
    path.write_text(yaml.safe_dump(config))
    frozen = tmp_path / "items" / "hotpotqa.jsonl.gz"
    result = CliRunner().invoke(app, ["eval", str(path), "--write-items", str(frozen)])
    assert result.exit_code == 0, result.output
    assert "wrote 4 items" in result.output and not (tmp_path / "eval").exists()  # no model ran
    read_back = collect_items(EvalConfig(name="x", items=[str(frozen)]), tmp_path)
    assert read_back == hotpotqa_items(4, seed=0)


def test_missing_items_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "items": [str(tmp_path / "nope.jsonl")]}))
    result = CliRunner().invoke(app, ["eval", str(path)])
    assert result.exit_code != 0 and "evaluation item file" in result.output and "nope.jsonl" in result.output


def test_limit_per_task_caps_every_source_not_only_longbench(tmp_path: Path) -> None:
    """limit_per_task=N keeps the first N items of each task from item files and built-in sets too (it
    used to cap only LongBench's loader, so a smoke run over a frozen 1,475-item file evaluated them all)."""
    from ctxsynth.errors import ConfigError
    from ctxsynth.eval.job import BuiltinSets, EvalConfig, collect_items

    frozen = tmp_path / "items.jsonl"
    CliRunner().invoke(app, ["eval", str(_yaml(tmp_path, {"name": "f", "builtin": {"hotpotqa": 5}})), "--write-items", str(frozen)])
    both = collect_items(EvalConfig(name="x", items=[str(frozen)], builtin=BuiltinSets(hotpotqa=5), limit_per_task=3), tmp_path)
    assert [i.id for i in both] == [i.id for i in hotpotqa_items(5, seed=0)[:3]]  # one task, both sources: 3 in all
    assert len(collect_items(EvalConfig(name="x", items=[str(frozen)]), tmp_path)) == 5
    with pytest.raises(ConfigError, match="limit_per_task must be >= 1"):
        EvalConfig(name="x", items=[str(frozen)], limit_per_task=0)


def _yaml(folder: Path, config: dict[str, object]) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
