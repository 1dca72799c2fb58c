"""The run config: typed, strict (unknown keys are errors with a suggestion), dotted overrides, and
the `validate` / `ls` commands that check a config without calling a model."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxsynth import config as cfg
from ctxsynth.cli import app
from ctxsynth.pipeline.config import RunConfig

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def test_unknown_key_is_an_error_with_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nsynth:\n  target_wrds: 10\n")
    with pytest.raises(cfg.ConfigError, match=r"synth.target_wrds.*Did you mean 'target_words'"):
        cfg.load(RunConfig, path)


def test_types_are_checked_with_the_key_named() -> None:
    with pytest.raises(cfg.ConfigError, match=r"synth.target_words: expected an integer"):
        cfg.from_dict(RunConfig, {"name": "x", "synth": {"target_words": "many"}})
    with pytest.raises(cfg.ConfigError, match="missing required config key"):
        cfg.from_dict(RunConfig, {})


def test_dotted_overrides_parse_yaml_values() -> None:
    run = cfg.load(RunConfig, QUICKSTART, ["synth.target_words=500", "llm.options.batch_size=2", "stages=[seeds]",
                                           "seeds.sample_seed=null", "seeds.limit=3"])
    assert run.synth.target_words == 500 and run.llm.options["batch_size"] == 2
    assert run.stages == ["seeds"] and run.seeds.sample_seed is None
    with pytest.raises(cfg.ConfigError, match="key.sub=value"):
        cfg.load(RunConfig, QUICKSTART, ["nonsense"])


def test_resolved_config_round_trips() -> None:
    run = cfg.load(RunConfig, QUICKSTART)
    again = cfg.from_dict(RunConfig, __import__("yaml").safe_load(cfg.dump_yaml(run)))
    assert again == run and cfg.config_hash(again) == cfg.config_hash(run)


def test_validate_command_accepts_quickstart_and_rejects_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(QUICKSTART)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["validate", str(QUICKSTART), "llm.options.batch_sise=2"])
    assert bad.exit_code == 2 and "batch_sise" in bad.output
    unknown_backend = runner.invoke(app, ["validate", str(QUICKSTART), "llm.backend=openia"])
    assert unknown_backend.exit_code == 2 and "Did you mean 'openai'" in unknown_backend.output


def test_ls_lists_registries() -> None:
    result = CliRunner().invoke(app, ["ls"])
    assert result.exit_code == 0
    assert "transformers" in result.output and "squad" in result.output and "synthesize" in result.output


def test_every_stage_has_its_own_verb() -> None:
    from ctxsynth.pipeline.stages import STAGE_NAMES as STAGES

    result = CliRunner().invoke(app, ["--help"])
    for stage in STAGES:
        assert f" {stage} " in result.output, stage
