"""Smoke test of benchmarks/trl_exports.py with tiny arguments: real TRL, two rows, one step."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from export_factory import make_samples

from ctxsynth.export import export_samples

pytest.importorskip("trl")
SCRIPT = Path(__file__).parents[2] / "benchmarks" / "trl_exports.py"


def test_trl_exports_benchmark_counts_answer_tokens_only(tmp_path, capsys):
    export_samples(make_samples()[:2], tmp_path / "export", ["trl_prompt_completion", "trl_messages"],
                   config_hash="c", tokenizer_name="smollm2")
    spec = importlib.util.spec_from_file_location("trl_exports", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # the factory's token counts are made up, so the manifest's max_length is overridden
    assert module.main([str(tmp_path), "--steps", "1", "--rows", "2", "--max-length", "1024"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_name = {line.split(" with ")[0] + (" defaults" if "TRL defaults" in line else ""): line for line in lines[1:]}
    # with the manifest's settings: the answer plus its end-of-turn token (and the newline after it)
    for name in ("trl_prompt_completion", "trl_messages"):
        extra = re.search(r"trained - answer: \[([^\]]*)\]", by_name[name]).group(1)
        assert extra in ("1", "2", "1, 2"), by_name[name]
    # TRL's defaults on a messages export train the whole conversation
    defaults = by_name["trl_messages defaults"]
    trained = [int(x) for x in re.search(r"trained tokens per sample \[([^\]]*)\]", defaults).group(1).split(", ")]
    assert min(trained) > 50
