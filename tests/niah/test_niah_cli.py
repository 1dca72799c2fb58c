"""`ctxsynth niah CONFIG` builds a pilot config's data with overrides and reports what it wrote."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ctxsynth.cli import app

PILOT = Path(__file__).resolve().parents[2] / "configs" / "pilot"


def test_niah_command_builds_training_exports_and_test_sets(tmp_path: Path) -> None:
    runner = CliRunner()
    train = runner.invoke(app, ["niah", str(PILOT / "sft3_short_haystack.yaml"), "train.samples_per_variant=2",
                                "--out", str(tmp_path / "sft3")])
    assert train.exit_code == 0, train.output
    assert "8 training samples" in train.output
    assert (tmp_path / "sft3" / "export" / "trl_messages" / "manifest.json").exists()
    test = runner.invoke(app, ["niah", str(PILOT / "test_grid_small.yaml"), "test.samples_per_cell=1",
                               "test.lengths=[512]", "--out", str(tmp_path / "grid")])
    assert test.exit_code == 0, test.output
    assert "20 test items" in test.output and len(list((tmp_path / "grid" / "test").glob("*.jsonl"))) == 4
    bad = runner.invoke(app, ["niah", str(PILOT / "test_grid_small.yaml"), "composition=haystack"])
    assert bad.exit_code == 2 and "composition" in bad.output
