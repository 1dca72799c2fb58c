"""Incremental, honest reruns (issue 14 item 3): a config change reruns the first stage that reads
it and the ones after it, nothing upstream; a changed seed file is named; --force invalidates later
stages; the config hash ignores keys that cannot change the bytes; base_url credentials never reach
config.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ctxsynth import config as cfg
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.rerun import first_affected
from ctxsynth.pipeline.run import Run, run_all
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer


def _data(tmp_path: Path, url: str, **top: Any) -> dict[str, Any]:
    return {"name": "r", "out_dir": str(tmp_path / "runs"), "seed": 3,
            "stages": ["seeds", "synthesize", "assemble", "export"],
            "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")},
            "llm": {"backend": "openai", "model": "test-model", "max_tokens": 512, "options": {"base_url": url}},
            "synth": {"target_words": 80}, "assemble": {"target_tokens": 1024},
            "export": {"formats": ["trl_messages", "context_free"]}, **top}


def _run(data: dict[str, Any], **prepare: Any) -> Run:
    run = Run(cfg.from_dict(RunConfig, data))
    run.prepare(**prepare)
    run_all(run)
    return run


def _done(run: Run, stage: str) -> float:
    return (run.state / stage / "DONE").stat().st_mtime_ns


def test_changed_keys_map_to_the_first_stage_that_reads_them() -> None:
    stages = ["seeds", "filter", "synthesize", "assemble", "export", "report"]
    assert first_affected(["export.formats"], stages, stages) == "export"
    assert first_affected(["report.prices.gpt.input_per_mtok"], stages, stages) == "report"
    assert first_affected(["llm.temperature", "export.formats"], stages, stages) == "synthesize"
    assert first_affected(["out_dir", "max_consecutive_failures"], stages, stages) is None
    assert first_affected(["stages"], ["seeds", "synthesize"], ["seeds", "filter", "synthesize"]) == "filter"


def test_export_change_reruns_export_only_and_upstream_changes_need_overwrite(tmp_path: Path) -> None:
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(
        {"id": f"s{i}", "instruction": f"Who founded settlement number {i}?", "answer": f"Founder {i}"}) + "\n"
        for i in range(3)))
    with OpenAIServer(context_writer) as server:
        data = _data(tmp_path, server.url)
        run = _run(data)
        before = {s: _done(run, s) for s in ("seeds", "synthesize", "assemble", "export")}
        hits = server.hits
        data["export"]["formats"] = ["trl_messages"]
        run = _run(data)  # no --overwrite needed
        assert {s: _done(run, s) for s in ("seeds", "synthesize", "assemble")} == {
            s: before[s] for s in ("seeds", "synthesize", "assemble")}
        assert _done(run, "export") != before["export"]
        assert sorted(p.name for p in (run.dir / "export").iterdir() if p.is_dir()) == ["trl_messages"]
        data["llm"]["temperature"] = 0.3
        with pytest.raises(cfg.ConfigError, match=r"changed: llm.temperature.*discard the synthesize stage"):
            Run(cfg.from_dict(RunConfig, data)).prepare()
        run = _run(data, overwrite=True)
        assert _done(run, "seeds") == before["seeds"]  # upstream of the change: kept
        assert server.hits == hits + 3  # new temperature, new requests; nothing else resent
        synth_done = _done(run, "synthesize")
        run = _run(data, force="assemble")
        assert _done(run, "synthesize") == synth_done and _done(run, "export") > synth_done

        (tmp_path / "seeds.jsonl").write_text((tmp_path / "seeds.jsonl").read_text() + json.dumps(
            {"id": "s9", "instruction": "Who founded settlement number 9?", "answer": "Founder 9"}) + "\n")
        with pytest.raises(cfg.ConfigError, match=r"seed input changed since the seeds stage read it: .*seeds.jsonl"):
            Run(cfg.from_dict(RunConfig, data)).prepare()
        run = _run(data, force="seeds")
        assert server.hits == hits + 3 + 1  # only the new seed's request is sent


def test_config_hash_ignores_out_dir_and_shards_and_credentials_stay_out_of_config_yaml(tmp_path: Path) -> None:
    url = "https://user:s3cret@llm.example.com/v1?api_key=s3cret&x=1"
    a = Run(cfg.from_dict(RunConfig, _data(tmp_path, url)))
    b = Run(cfg.from_dict(RunConfig, _data(tmp_path, url, out_dir=str(tmp_path / "elsewhere"), shards=4)))
    assert a.config_hash() == b.config_hash()
    c = Run(cfg.from_dict(RunConfig, _data(tmp_path, url, seed=4)))
    assert a.config_hash() != c.config_hash()
    a.prepare()
    saved = (a.dir / "config.yaml").read_text()
    assert "s3cret" not in saved and "https://***@llm.example.com/v1?api_key=***&x=1" in saved
    a.prepare()  # the redacted file compares equal to the same config: resumes
