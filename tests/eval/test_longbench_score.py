"""`ctxsynth score PRED_DIR`: LongBench eval.py's scoring of prediction files, hand-computed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.errors import UserError
from ctxsynth.eval.longbench_score import markdown_table, score_dir


def _write(folder: Path, task: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{task}.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"all_classes": None, "length": 100, **row}, ensure_ascii=False) + "\n")


def _f(p: float, r: float) -> float:
    return 2 * p * r / (p + r + 1e-8)


@pytest.fixture()
def pred_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "pred" / "my-model"
    classes = ["Numeric value", "value", "Numeric value, distance", "Location"]
    _write(folder, "trec", [
        # first line only (after leading newlines): "Location" -> 1
        {"pred": "\nLocation\nQuestion: where?", "answers": ["Location"], "all_classes": []},
        # the removal quirk: "value" survives next to the reference -> 1/2
        {"pred": "Numeric value, distance", "answers": ["Numeric value, distance"], "all_classes": classes},
    ])  # eval.py keeps the last line's all_classes for the whole file: the empty list above is not used
    _write(folder, "gov_report", [
        {"pred": "c. a b", "answers": ["a b c"], "length": 3999},  # sentence split: P = R = 1
        {"pred": "The cat sat", "answers": ["the cat sat"], "length": 4000},  # case kept: P = R = 2/3
    ])
    _write(folder, "lcc", [
        {"pred": "```\nac a\n```", "answers": ["cca"], "length": 8000},  # fuzzywuzzy on difflib: 29
        {"pred": "# comment only", "answers": ["x = 1", "y = 2"], "length": 9000},  # no code line: 0
    ])
    (folder / "notes.txt").write_text("not a prediction file")
    return folder


def test_scores_match_eval_py_by_hand(pred_dir: Path) -> None:
    scores = score_dir(pred_dir)
    assert scores == {
        "gov_report": round(100 * (_f(1, 1) + _f(2 / 3, 2 / 3)) / 2, 2),  # 83.33
        "lcc": 14.5,  # (0.29 + 0) / 2
        "trec": 75.0,  # (1 + 1/2) / 2
    }
    assert scores["gov_report"] == 83.33
    assert json.loads((pred_dir / "result.json").read_text()) == scores


def test_longbench_e_buckets_and_empty_buckets(pred_dir: Path) -> None:
    scores = score_dir(pred_dir, e=True)
    assert scores["gov_report"] == {"0-4k": 100.0, "4-8k": 66.67, "8k+": None}
    assert scores["lcc"] == {"0-4k": None, "4-8k": None, "8k+": 14.5}
    assert "| gov_report | 100.00 | 66.67 | - |" in markdown_table(scores, e=True)


def test_cli_json_prints_only_the_scores(pred_dir: Path) -> None:
    result = CliRunner().invoke(app, ["score", str(pred_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"gov_report": 83.33, "lcc": 14.5, "trec": 75.0}
    assert len(result.stdout.strip().splitlines()) == 1


def test_cli_table_and_mean(pred_dir: Path) -> None:
    result = CliRunner().invoke(app, ["score", str(pred_dir)])
    assert result.exit_code == 0, result.output
    assert "| trec | 75.00 |" in result.stdout
    assert "| mean over 3 tasks | 57.61 |" in result.stdout  # (83.33 + 14.5 + 75) / 3


def test_bad_files_fail_with_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "a", "hotpotqa", [{"pred": "x", "answers": ["x"]}])
    with open(tmp_path / "a" / "hotpotqa.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(UserError, match=r"hotpotqa.jsonl:2: not valid JSON"):
        score_dir(tmp_path / "a")
    _write(tmp_path / "b", "hotpotqa_dev", [{"pred": "x", "answers": ["x"]}])
    with pytest.raises(UserError, match="'hotpotqa_dev' is not a LongBench task"):
        score_dir(tmp_path / "b")
    _write(tmp_path / "c", "qasper", [{"pred": "x"}])
    with pytest.raises(UserError, match=r"qasper.jsonl:1: no 'answers' field"):
        score_dir(tmp_path / "c")
    result = CliRunner().invoke(app, ["score", str(tmp_path / "missing")])
    assert result.exit_code != 0 and "no such folder" in " ".join(result.output.split())
