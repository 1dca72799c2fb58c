"""`ctxsynth train CONFIG` end to end on CPU: a tiny random Llama trained on a NIAH export made by
`ctxsynth niah`, with the checkpoint NIAH grid (ctxsynth.niah + ctxsynth.eval) wired in."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ctxsynth.cli import app

PILOT = Path(__file__).resolve().parents[2] / "configs" / "pilot" / "sft3_short_haystack.yaml"


def test_train_command_runs_saves_and_scores_niah_at_checkpoints(tmp_path: Path, tiny_model_dir: Path) -> None:
    runner = CliRunner()
    built = runner.invoke(app, ["niah", str(PILOT), "train.samples_per_variant=2", "train.lengths=[512]",
                                "--out", str(tmp_path / "niah")])
    assert built.exit_code == 0, built.output
    config = {
        "model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"),
        "data": {"train_files": [str(tmp_path / "niah" / "export" / "trl_messages" / "data.jsonl")], "max_length": 1024},
        "lora": {"enabled": False}, "max_steps": 2, "save_steps": 2, "bf16": False, "gradient_checkpointing": False,
        "niah": {"enabled": True, "lengths": [512], "depths": [0.5], "samples_per_cell": 1},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 0, result.output
    assert "train: 2 steps" in result.output
    assert (tmp_path / "out" / "final" / "config.json").exists()
    niah = json.loads((tmp_path / "out" / "checkpoint-2" / "niah.json").read_text())
    assert niah["step"] == 2 and 0.0 <= niah["niah/mean"] <= 100.0
    # the run's record: summary (counts, steps, device) and every logged step, beside the loss curve
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["global_step"] == 2 and summary["device"] == "cpu" and summary["compile"] is False
    history = json.loads((tmp_path / "out" / "log_history.json").read_text())
    assert [e["step"] for e in history if "loss" in e] == [1, 2]
    assert any("niah/mean" in e for e in history)
