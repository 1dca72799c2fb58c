"""Preflight (issue 14 item 2): `ctxsynth run` checks the whole config and probes each endpoint
before any stage runs, so a typo, a missing key, a bad tokenizer, a missing file, a closed port or
an unknown model costs seconds, not a seeds stage or a synthesis stage."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer


def _config(tmp_path: Path, url: str, **extra: Any) -> Path:
    (tmp_path / "seeds.jsonl").write_text(json.dumps({"id": "a", "instruction": "Who built the old mill?",
                                                      "answer": "Ann"}) + "\n")
    config: dict[str, Any] = {
        "name": "p", "out_dir": "runs", "stages": ["seeds", "synthesize", "assemble"],
        "seeds": {"source": "jsonl", "path": "seeds.jsonl"},
        "llm": {"backend": "openai", "model": "test-model", "max_tokens": 512, "options": {"base_url": url}},
        "synth": {"target_words": 80},
    }
    for key, value in extra.items():
        node = config
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(tmp_path: Path, config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run([sys.executable, "-m", "ctxsynth.cli", "run", str(config)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={**full_env, **(env or {})})


def _nothing_ran(tmp_path: Path) -> bool:
    return not (tmp_path / "runs" / "p" / "seeds").exists()


def _error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return " ".join(line for line in proc.stderr.splitlines() if line.startswith("error:"))


def test_a_closed_port_fails_before_any_stage(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = _error(_run(tmp_path, _config(tmp_path, f"http://127.0.0.1:{port}/v1")))
    assert f"llm: cannot reach http://127.0.0.1:{port}/v1 during preflight" in line
    assert _nothing_ran(tmp_path)


def test_an_unlisted_model_is_a_warning_and_a_404_then_stops_at_once(tmp_path: Path) -> None:
    from ctxsynth.testing.scripting import Fault

    with OpenAIServer(context_writer, fault_rule=lambda hit: Fault("status", status=404, message="no model")) as server:
        line = _error(_run(tmp_path, _config(tmp_path, server.url, **{"llm.model": "gpt-typo"})))
        assert server.hits <= 2
    assert "HTTP 404 on the first request (not_found)" in line


def test_missing_key_bad_tokenizer_and_missing_paths_fail_before_any_stage(tmp_path: Path) -> None:
    remote = _config(tmp_path, "https://api.example.invalid/v1")
    assert "llm: backend 'openai' needs an API key: set the environment variable OPENAI_API_KEY" in _error(
        _run(tmp_path, remote))
    batch = _config(tmp_path, "https://api.example.invalid/v1", **{"llm.backend": "openai-batch",
                                                                    "llm.options": {"api_key_env": "BATCH_KEY"}})
    assert "BATCH_KEY" in _error(_run(tmp_path, batch))
    with OpenAIServer(context_writer) as server:
        bad_tok = _config(tmp_path, server.url, **{"assemble.tokenizer": "no/such/tokenizer"})
        assert "tokenizer 'no/such/tokenizer'" in _error(_run(tmp_path, bad_tok))
        no_seeds = _config(tmp_path, server.url, **{"seeds.path": "missing.jsonl"})
        line = _error(_run(tmp_path, no_seeds))
        assert f"seeds.path: {tmp_path / 'missing.jsonl'} does not exist" in line
        assert f"resolve against the directory you ran from, {tmp_path}" in line
        typo = _config(tmp_path, server.url, **{"llm.backend": "opneai"})
        assert "Did you mean 'openai'" in _error(_run(tmp_path, typo))
        assert server.hits == 0
    assert _nothing_ran(tmp_path)


def test_a_good_config_passes_preflight_and_runs(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        proc = _run(tmp_path, _config(tmp_path, server.url, stages=["seeds", "synthesize"]))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs" / "p" / "_state" / "synthesize" / "DONE").exists()
    with OpenAIServer(context_writer) as server:
        proc = _run(tmp_path, _config(tmp_path, server.url, name="q", stages=["seeds"], **{"llm.model": "other"}))
    assert proc.returncode == 0, proc.stderr
    assert "warning: llm.model" not in proc.stderr  # only stages still to run are checked: no synthesis here
    with OpenAIServer(context_writer) as server:
        proc = _run(tmp_path, _config(tmp_path, server.url, name="r", **{"llm.model": "other", "stages": ["seeds", "synthesize"]}))
    assert "does not list model 'other' (it lists: test-model)" in " ".join(proc.stderr.split())


def test_a_missing_retrieval_library_fails_before_any_stage(tmp_path: Path, monkeypatch: Any) -> None:
    """Hard negatives (bm25) need bm25s, the `assemble` extra: on a machine without it the run used to
    stop inside assembly, after paid synthesis, with an internal-error traceback (a GPU machine, issue 27)."""
    import pytest

    from ctxsynth import config as cfg
    from ctxsynth.assemble.distractors import BM25Source
    from ctxsynth.errors import MissingDependency
    from ctxsynth.pipeline.config import RunConfig
    from ctxsynth.pipeline.preflight import preflight
    from ctxsynth.pipeline.run import Run

    config = yaml.safe_load(_config(tmp_path, "http://127.0.0.1:9/v1").read_text())
    config["llm"] = {"backend": "fake"}
    config["assemble"] = {"distractors": "bm25"}
    run = Run(cfg.from_dict(RunConfig, config), base_dir=tmp_path)
    assert preflight(run, probe=False) == []  # installed here: no complaint
    monkeypatch.setitem(sys.modules, "bm25s", None)  # how Python marks a module that cannot be imported
    with pytest.raises(MissingDependency, match=r"assemble.distractors 'bm25' needs bm25s: pip install 'ctxsynth\[assemble\]'"):
        preflight(run, probe=False)
    with pytest.raises(MissingDependency):
        BM25Source([])
    run.config.stages = ["seeds", "synthesize"]  # no assembly to run: nothing to install
    assert preflight(run, probe=False) == []
