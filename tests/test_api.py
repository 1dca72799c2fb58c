"""The Python API: docs/api.md's worked example runs as written, and the API's own checks hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ctxsynth
from ctxsynth.config import ConfigError

DOC = Path(__file__).parents[1] / "docs" / "api.md"


def test_docs_worked_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/api.md lost its example"
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(DOC), "exec"), namespace)  # noqa: S102 - the doc is ours
    pipe = namespace["pipe"]
    assert "12 contexts; 12 samples; ['completion', 'id', 'prompt']" in capsys.readouterr().out
    assert pipe.card.exists()
    assert pipe.run() == {s: None for s in pipe.config.stages}  # finished stages are skipped
    assert len(pipe.dataset("seeds")) == 12 and len(pipe.dataset("synthesize", rejected=True)) == 0
    parquet = pipe.export("parquet")
    assert parquet["answers"][0] == [pipe.records("assemble")[0]["answer"]]


def test_config_errors_and_unknown_names(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'seedz'"):
        ctxsynth.Pipeline.from_dict({"name": "x", "out_dir": str(tmp_path), "seedz": {}})
    pipe = ctxsynth.Pipeline.from_dict({"name": "x", "out_dir": str(tmp_path)}, ["seeds.limit=2"])
    assert pipe.config.seeds.limit == 2 and pipe.dir == tmp_path / "x"
    with pytest.raises(ConfigError, match="unknown stage"):
        pipe.run(["sed"])
    with pytest.raises(ValueError, match="writes no records"):
        pipe.dataset("report")
    with pytest.raises(FileNotFoundError, match="no finished export 'trl_messages'"):
        pipe.export("trl_messages")
