"""The shipped evaluation configs load (strict keys, types) and name sets the loader understands."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxsynth import config as cfg
from ctxsynth.eval.job import EvalConfig

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "eval").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_eval_configs_load(path: Path) -> None:
    config = cfg.load(EvalConfig, path)
    assert config.niah or config.longbench or config.builtin.hotpotqa or config.builtin.squad or config.ruler.tasks


def test_unknown_eval_key_is_rejected() -> None:
    with pytest.raises(cfg.ConfigError, match="Did you mean 'builtin'"):
        cfg.from_dict(EvalConfig, {"name": "x", "builtins": {}})
