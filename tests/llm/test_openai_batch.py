"""The `openai-batch` backend against the local server's real Batch API endpoints (files upload,
batch create / retrieve, output and error files); nothing in the client is patched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.io import read_shards
from ctxsynth.llm import BACKENDS
from ctxsynth.llm.base import ChatRequest, SamplingParams
from ctxsynth.llm.openai.batch import OpenAIBatchBackend
from ctxsynth.testing import OpenAIServer, Reply
from ctxsynth.testing.responders import context_writer


def ask(text: str, seed: int = 0) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], SamplingParams(temperature=0.0, max_tokens=16, seed=seed))


def shout(body: dict) -> Reply:
    text = body["messages"][-1]["content"]
    if "REFUSE" in text:
        raise ValueError("this line is refused")
    return Reply(text.upper())


def backend(server: OpenAIServer, tmp_path: Path, **options: object) -> OpenAIBatchBackend:
    settings: dict = {"base_url": server.url, "poll_interval_s": 0.05, "state_dir": str(tmp_path / "state")}
    return OpenAIBatchBackend("test-model", **{**settings, **options})


def test_results_are_matched_by_custom_id_and_duplicates_travel_once(tmp_path: Path) -> None:
    """The server writes output lines in reverse order; each result still lands on its request, a
    repeated request is one batch line, and the state file is gone once the results are read."""
    requests = [ask("alpha"), ask("beta"), ask("alpha"), ask("gamma", seed=3), ask("delta")]
    seen: dict[int, str] = {}
    with OpenAIServer(shout, batch_delay_s=0.1) as server:
        results = backend(server, tmp_path).generate(requests, on_result=lambda i, r: seen.setdefault(i, r.text))
        assert server.batch_lines_answered == 4 and len(server.batch_ids()) == 1
    assert [r.text for r in results] == ["ALPHA", "BETA", "ALPHA", "GAMMA", "DELTA"]
    assert all(r.finish_reason == "stop" and r.usage["completion_tokens"] == 1 for r in results)
    assert seen == {i: r.text for i, r in enumerate(results)}
    assert not list((tmp_path / "state").glob("*.json"))


def test_an_interrupted_wait_resumes_the_same_batch_instead_of_paying_twice(tmp_path: Path) -> None:
    requests = [ask(f"item {i}") for i in range(6)]
    with OpenAIServer(shout, batch_delay_s=0.5) as server:
        first = backend(server, tmp_path, max_wait_s=0.0).generate(requests)
        assert not any(r.ok for r in first)
        assert "batch-1 still" in (first[0].error or "") and "run again" in (first[0].error or "")
        assert len(list((tmp_path / "state").glob("*.json"))) == 1  # the id is kept for the rerun
        second = backend(server, tmp_path).generate(requests)
        assert server.batch_ids() == ["batch-1"] and server.batch_lines_answered == 6
    assert [r.text for r in second] == [f"ITEM {i}" for i in range(6)]


def test_error_lines_and_an_expired_batch_fail_only_their_requests(tmp_path: Path) -> None:
    requests = [ask("one"), ask("REFUSE two"), ask("three"), ask("four")]
    with OpenAIServer(shout) as server:
        results = backend(server, tmp_path).generate(requests)
    assert [r.ok for r in results] == [True, False, True, True]
    assert "batch line failed: this line is refused" in (results[1].error or "")
    with OpenAIServer(shout, batch_answer_limit=2) as server:  # the window closes after 2 lines
        results = backend(server, tmp_path).generate([ask(f"n{i}") for i in range(5)])
    assert [r.ok for r in results] == [True, True, False, False, False]
    assert "not answered: batch batch-1 ended expired" in (results[4].error or "")


def test_large_inputs_are_split_into_several_batches(tmp_path: Path) -> None:
    with OpenAIServer(shout) as server:
        results = backend(server, tmp_path, max_batch_requests=2).generate([ask(f"w{i}") for i in range(5)])
        assert len(server.batch_ids()) == 3
    assert [r.text for r in results] == [f"W{i}" for i in range(5)]


def test_registry_options_and_a_missing_key_for_a_remote_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert BACKENDS.get("openai-batch") is OpenAIBatchBackend
    with pytest.raises(ValueError, match="poll_interval_s"):
        OpenAIBatchBackend("m", poll_interval_s=0)
    monkeypatch.delenv("CTXSYNTH_ABSENT_KEY", raising=False)
    remote = OpenAIBatchBackend("m", base_url="https://api.example.invalid/v1", api_key_env="CTXSYNTH_ABSENT_KEY")
    with pytest.raises(Exception, match="CTXSYNTH_ABSENT_KEY"):
        remote.generate([ask("x")])


def test_the_pipeline_synthesizes_through_the_batch_api(tmp_path: Path) -> None:
    """`llm.backend: openai-batch` in a run config: seeds -> synthesize -> assemble, all contexts
    written through batches (one per synthesis round and shard) and verified."""
    rows = [{"id": f"q{i}", "instruction": f"Which harbour did captain number {i} sail from?",
             "answer": f"Port Ilvar {i}", "task": "single_doc_qa"} for i in range(6)]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with OpenAIServer(context_writer) as server:
        config = {
            "name": "batch", "out_dir": str(tmp_path / "runs"), "stages": ["seeds", "synthesize", "assemble"],
            "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")},
            "llm": {"backend": "openai-batch", "model": "m", "max_tokens": 1024,
                    "options": {"base_url": server.url, "poll_interval_s": 0.05, "state_dir": str(tmp_path / "st")}},
            "synth": {"target_words": 120},
            "assemble": {"target_tokens": 512},
        }
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        result = CliRunner().invoke(app, ["run", str(path)])
        assert server.hits == 0 and server.batch_lines_answered == 6  # no synchronous request at all
    assert result.exit_code == 0, result.output
    assert "6 of 6 contexts passed" in result.output
    assert len(list(read_shards(tmp_path / "runs" / "batch" / "assemble"))) == 6
