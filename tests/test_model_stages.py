"""The train and eval stages of a run config, without training: config checks, rerun fingerprints,
derived defaults, the eval stage's markers and comparison (against the local OpenAI-protocol server,
which answers as a "trained" and a "base" model), and the card section. The whole path with real
training of the embedded SmolLM2 is in tests/test_end_to_end_training.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.errors import ConfigError, PathNotFound, UserError
from ctxsynth.eval.stage import card_section, compare_scores
from ctxsynth.io import Markers, write_jsonl
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.preflight import preflight, validate_run
from ctxsynth.pipeline.rerun import first_affected
from ctxsynth.pipeline.run import Run
from ctxsynth.pipeline.stages import stages_from
from ctxsynth.testing import OpenAIServer, Reply
from ctxsynth.train.stage import train_config

ALL = ["seeds", "synthesize", "assemble", "export", "train", "eval", "report"]


def _run(tmp_path: Path, **kw: Any) -> Run:
    from ctxsynth import config as cfg

    data = {"name": "m", "out_dir": str(tmp_path / "runs"), "stages": ALL, "llm": {"backend": "fake"},
            "eval": {"items": ["items.jsonl"]}, **kw}
    return Run(cfg.from_dict(RunConfig, data), base_dir=tmp_path)


def test_default_stages_leave_train_and_eval_out_and_order_is_checked(tmp_path: Path) -> None:
    assert "train" not in RunConfig(name="t").stages and "eval" not in RunConfig(name="t").stages
    with pytest.raises(ConfigError, match="out of order"):
        RunConfig(name="t", stages=["seeds", "report", "train"])
    assert stages_from("train") == ["train", "eval", "report"]


@pytest.mark.parametrize(("change", "message"), [
    ({"export": {"formats": ["llamafactory"]}}, "train.export_format"),
    ({"train": {"export_format": "parquet"}}, "not one the trainer reads"),
    ({"train": {"output_dir": "elsewhere"}}, "train.output_dir"),
    ({"eval": {"out_dir": "elsewhere"}}, "eval.out_dir"),
    ({"eval": {"items": ["i.jsonl"], "name": "base"}}, "eval.name"),
    ({"eval": {}}, "name an evaluation set"),
    ({"eval": {"items": ["i.jsonl"], "model": {"backend": "nope"}}}, "nope"),
    ({"train": {"lora": {"enabled": True}}}, "LoRA adapter"),
    ({"eval": {"items": ["i.jsonl"], "model": {"model": "served-name"}}}, "eval.model.tokenizer"),
    ({"stages": ["seeds", "synthesize", "assemble", "export", "eval"]}, "without the train stage"),
])
def test_validate_names_the_bad_train_or_eval_key(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        validate_run(_run(tmp_path, **change))


def test_validate_command_checks_the_new_sections(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "m", "stages": ALL, "llm": {"backend": "fake"},
                                    "export": {"formats": ["llamafactory"]}, "eval": {"items": ["x.jsonl"]}}))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "train.export_format" in result.output
    typo = CliRunner().invoke(app, ["validate", str(path), "train.learning_rat=1"])
    assert typo.exit_code == 2 and "learning_rate" in typo.output


def test_each_new_section_reruns_its_own_stage_and_the_later_ones() -> None:
    assert first_affected(["train.learning_rate"], ALL, ALL) == "train"
    assert first_affected(["train.data.max_length"], ALL, ALL) == "train"
    assert first_affected(["eval.limit_per_task"], ALL, ALL) == "eval"
    assert first_affected(["export.formats", "eval.base"], ALL, ALL) == "export"
    assert first_affected(["stages"], ALL[:4] + ["report"], ALL) == "train"  # adding train reruns the report


def test_train_config_defaults_come_from_the_run(tmp_path: Path) -> None:
    run = _run(tmp_path, train={"max_steps": 3, "data": {"general_files": ["general.jsonl"]}})
    tc = train_config(run)
    assert tc.data.train_files == [str(run.dir / "export" / "trl_messages" / "data.jsonl")]
    assert tc.data.general_files == [str(tmp_path / "general.jsonl")]
    assert tc.output_dir == str(run.dir / "train") and tc.resume_from_checkpoint is True and tc.max_steps == 3
    assert type(tc).__name__ == "TrainConfig"

    from ctxsynth.eval.stage import eval_targets

    given = _run(tmp_path, eval={"items": ["i.jsonl"], "model": {"max_model_len": 512}}, train={"model": "smollm2"})
    final = str(given.dir / "train" / "final")
    assert eval_targets(given) == [("trained", final, final), ("base", "smollm2", "smollm2")]


def test_preflight_checks_eval_files_and_the_train_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(PathNotFound, match=r"eval\.items\[0\]"):
        preflight(_run(tmp_path), probe=False)
    (tmp_path / "items.jsonl").write_text("")
    with pytest.raises(PathNotFound, match="tokenizer"):
        preflight(_run(tmp_path, train={"tokenizer": str(tmp_path / "no-such-model")}), probe=False)
    warnings = preflight(_run(tmp_path, train={"model": "org/some-hub-model", "tokenizer": "smollm2"}), probe=False)
    assert any("train.model" in w and "Hugging Face Hub" in w for w in warnings)


def test_compare_scores_hand_computed(tmp_path: Path) -> None:
    def write(folder: str, scores: dict[str, float]) -> Path:
        rows = [{"id": i, "task": "qa" if i != "n1" else "niah", "score": s} for i, s in scores.items()]
        write_jsonl(tmp_path / folder / "predictions.jsonl", rows)
        return tmp_path / folder

    base = write("base", {"a": 0.0, "b": 1.0, "c": 0.5, "n1": 0.0})
    trained = write("trained", {"a": 1.0, "b": 1.0, "c": 0.5, "n1": 1.0})
    result = compare_scores(base, trained)
    overall = result["overall"]
    assert overall["n"] == 4 and overall["base"]["mean"] == pytest.approx(1.5 / 4)
    assert overall["trained"]["mean"] == pytest.approx(3.5 / 4) and overall["difference"]["mean"] == pytest.approx(0.5)
    assert result["tasks"]["qa"]["n"] == 3 and result["tasks"]["qa"]["difference"]["mean"] == pytest.approx(1 / 3)
    diff = overall["difference"]
    assert 0 <= diff["low"] <= 0.5 <= diff["high"] <= 1  # differences are 1, 0, 0, 1


def _two_models(body: dict[str, Any]) -> Reply:
    """The "trained" model answers from the prompt's code; the base model knows the code of item 0 only."""
    user = body["messages"][-1]["content"]
    code = re.search(r"code (\w+)", user).group(1)  # type: ignore[union-attr]
    item = int(re.search(r"item (\d+)", user).group(1))  # type: ignore[union-attr]
    right = body["model"] == "trained-model" or item == 0
    return Reply(code if right else "unknown")


def test_eval_stage_compares_marks_each_model_and_resumes(tmp_path: Path) -> None:
    items = [{"id": f"i{i}", "task": "codes", "prompt": f"The archive lists item {i} with code K{i}x. What is the code?",
              "answers": [f"K{i}x"], "metric": "qa_f1", "max_new_tokens": 8} for i in range(5)]
    write_jsonl(tmp_path / "items.jsonl", items)
    with OpenAIServer(_two_models) as server:
        config = {"name": "ev", "out_dir": str(tmp_path / "runs"), "stages": ["eval", "report"],
                  "train": {"model": "base-model"},
                  "eval": {"items": [str(tmp_path / "items.jsonl")],
                           "model": {"backend": "openai", "model": "trained-model", "tokenizer": None, "max_model_len": None,
                                     "options": {"base_url": server.url}}}}
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        result = CliRunner().invoke(app, ["run", str(path), "--no-preflight"])
        assert result.exit_code == 0, result.output
        run_dir = tmp_path / "runs" / "ev"
        comparison = json.loads((run_dir / "eval" / "comparison.json").read_text())
        overall = comparison["overall"]
        assert overall["n"] == 5 and overall["base"]["mean"] == pytest.approx(0.2)
        assert overall["trained"]["mean"] == pytest.approx(1.0) and overall["difference"]["mean"] == pytest.approx(0.8)
        card = (run_dir / "report" / "README.md").read_text()
        assert "## Trained model vs base" in card and "| all | 5 | 20.0 [" in card and "| 100.0 [100.0, 100.0] |" in card
        line = "trained vs base model (x100, 95% intervals, n=5 items): base 20.0 ["
        assert line in result.output and line in (run_dir / "summary.md").read_text()
        markers = Markers(run_dir / "_state", "eval")
        assert markers.shard_done(0) and markers.shard_done(1) and markers.stage_done()

        trained_preds = run_dir / "eval" / "trained" / "predictions.jsonl"
        before = trained_preds.stat().st_mtime_ns
        (run_dir / "_state" / "eval" / "DONE").unlink(missing_ok=True)
        for p in (run_dir / "_state" / "eval").glob("*"):
            if "1" in p.name:  # the base model's shard marker: as if the stage stopped after the trained model
                p.unlink()
        assert not Markers(run_dir / "_state", "eval").stage_done()
        again = CliRunner().invoke(app, ["run", str(path), "--no-preflight"])
        assert again.exit_code == 0, again.output
    assert trained_preds.stat().st_mtime_ns == before  # the finished evaluation was not redone
    assert (run_dir / "eval" / "base" / "predictions.jsonl").exists() and Markers(run_dir / "_state", "eval").stage_done()


def test_card_section_is_absent_without_a_comparison(tmp_path: Path) -> None:
    assert card_section(tmp_path) == []


def test_the_shipped_end_to_end_config_validates() -> None:
    config = Path(__file__).resolve().parents[1] / "configs" / "end_to_end.yaml"
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    from ctxsynth import config as cfg

    run_config = cfg.load(RunConfig, config)
    assert run_config.stages[-3:] == ["train", "eval", "report"] and run_config.eval.builtin.hotpotqa == 8
