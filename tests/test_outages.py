"""A failed run never looks like a finished one (issue 14 item 1), against the real local server:
a closed port, a refused key (401), an unknown model (404) and sporadic 500s each stop the run with
a non-zero exit, one line naming the endpoint and the fix, and an incomplete stage; the rerun sends
exactly the unanswered requests."""

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
from ctxsynth.testing.scripting import Fault

N = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(tmp_path: Path, url: str, retries: int = 1, breaker: int = 3) -> Path:
    rows = [{"id": f"s{i}", "instruction": f"Who founded settlement number {i}?", "answer": f"Founder {i}",
             "task": "single_doc_qa"} for i in range(N)]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config: dict[str, Any] = {
        "name": "r", "out_dir": "runs", "stages": ["seeds", "synthesize"], "max_consecutive_failures": breaker,
        "seeds": {"source": "jsonl", "path": "seeds.jsonl"},
        "llm": {"backend": "openai", "model": "test-model", "max_tokens": 512,
                "options": {"base_url": url, "max_concurrency": 2, "max_retries": retries,
                            "backoff_base_s": 0.01, "backoff_max_s": 0.02}},
        "synth": {"target_words": 80, "max_attempts": 2},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(tmp_path: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ctxsynth run` without preflight: these tests are about what happens mid-run."""
    return subprocess.run([sys.executable, "-m", "ctxsynth.cli", "run", str(config), "--no-preflight", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    return " ".join(line for line in proc.stderr.splitlines() if line.startswith("error:"))


def _synth_done(tmp_path: Path) -> bool:
    return (tmp_path / "runs" / "r" / "_state" / "synthesize" / "DONE").exists()


def test_closed_port_stops_then_the_rerun_with_the_server_up_finishes(tmp_path: Path) -> None:
    port = _free_port()
    config = _setup(tmp_path, f"http://127.0.0.1:{port}/v1")
    down = _run(tmp_path, config)
    assert down.returncode == 2, down.stderr
    line = _error_line(down)
    assert f"http://127.0.0.1:{port}/v1: connection_error on 3 requests in a row (outage)" in line
    assert "check that the server is up" in line and "rerun the same command" in line
    assert "Traceback" not in down.stderr and not _synth_done(tmp_path)
    stopped = json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())["stopped"]
    assert stopped["cause"] == "outage" and stopped["endpoint"] == f"http://127.0.0.1:{port}/v1"
    with OpenAIServer(context_writer, port=port) as server:
        up = _run(tmp_path, config)
        assert up.returncode == 0, up.stderr
        assert server.hits == N and set(server.hits_by_key().values()) == {1}
    assert _synth_done(tmp_path)


def test_a_refused_key_stops_at_the_first_request(tmp_path: Path) -> None:
    with OpenAIServer(context_writer, fault_rule=lambda hit: Fault("status", status=401,
                                                                  message="invalid api key")) as server:
        proc = _run(tmp_path, _setup(tmp_path, server.url))
        # not the whole shard times the retries (6 x 2): the 2 requests in flight, and at most one more per
        # slot: an attempt gives its slot back before its refusal reaches the breaker (hedged attempts run
        # as their own task), and a request waiting for that slot can start in between (CI saw 4 once)
        assert server.hits <= 2 * 2
    assert proc.returncode == 2
    line = _error_line(proc)
    assert "HTTP 401 on the first request (auth)" in line and "OPENAI_API_KEY" in line
    assert not _synth_done(tmp_path)


def test_an_unknown_model_stops_at_the_first_request(tmp_path: Path) -> None:
    with OpenAIServer(context_writer, fault_rule=lambda hit: Fault("status", status=404,
                                                                  message="model not found")) as server:
        proc = _run(tmp_path, _setup(tmp_path, server.url))
    assert proc.returncode == 2
    assert "HTTP 404 on the first request (not_found)" in _error_line(proc) and "'test-model'" in _error_line(proc)
    assert not _synth_done(tmp_path)


def test_sporadic_failures_are_never_final_and_the_rerun_sends_exactly_those(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        server.inject(Fault("status", status=500), times=2)
        config = _setup(tmp_path, server.url, retries=0, breaker=20)
        first = _run(tmp_path, config)
        assert first.returncode == 2, first.stderr
        assert "2 request(s)" in _error_line(first) and "http_500_exhausted" in _error_line(first)
        assert not _synth_done(tmp_path)
        answered = server.hits - 2
        second = _run(tmp_path, config)
        assert second.returncode == 0, second.stderr
        assert server.hits - (answered + 2) == 2  # exactly the two that failed; nothing answered is re-sent
    assert _synth_done(tmp_path)
    kept = sum(1 for _ in (tmp_path / "runs" / "r" / "synth").glob("shard-*.jsonl.gz"))
    assert kept == 1


def test_failures_are_classified_from_what_the_backends_report() -> None:
    from ctxsynth.llm.base import ChatResult
    from ctxsynth.llm.failures import classify_error, failure_kind

    cases = {"http_401: bad key": "auth", "http_403: forbidden": "auth", "http_404: no model": "not_found",
             "http_429_exhausted": "rate_limit", "http_503_exhausted": "outage", "connection_error": "outage",
             "timeout": "outage", "http_400: context too long": "content", "prompt has 9000 tokens": "content"}
    assert {e: classify_error(e) for e in cases} == cases
    assert failure_kind(ChatResult("ok", "stop")) is None


def test_the_breaker_trips_on_consecutive_infrastructure_failures_only() -> None:
    import pytest

    from ctxsynth.errors import BackendUnavailable
    from ctxsynth.llm.base import ChatResult
    from ctxsynth.llm.breaker import CircuitBreaker
    from ctxsynth.llm.fake import FakeBackend

    breaker = CircuitBreaker(FakeBackend(), "http://h/v1", max_consecutive=3)
    for error in ("timeout", "http_400: bad", "timeout", "timeout"):  # a content failure resets the count
        breaker.observe(ChatResult(None, None, error=error))
    breaker.observe(ChatResult("fine", "stop"))
    breaker.observe(ChatResult(None, None, error="http_401: late"))  # after a success: counted, not fatal
    with pytest.raises(BackendUnavailable) as exc:
        for _ in range(2):
            breaker.observe(ChatResult(None, None, error="http_502_exhausted"))
    assert exc.value.cause == "outage" and exc.value.endpoint == "http://h/v1" and exc.value.status == 502


def test_an_eval_against_an_unknown_model_stops_instead_of_scoring_zero(tmp_path: Path) -> None:
    items = [{"id": f"i{i}", "task": "qa", "prompt": f"What is {i} plus one?", "answers": [str(i + 1)],
              "metric": "qa_f1"} for i in range(4)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    with OpenAIServer(context_writer, fault_rule=lambda hit: Fault("status", status=404,
                                                                  message="model not found")) as server:
        config = {"name": "e", "out_dir": "runs/eval", "items": ["items.jsonl"],
                  "model": {"backend": "openai", "model": "test-model", "tokenizer": None, "truncation": "none",
                            "options": {"base_url": server.url, "max_retries": 1}}}
        (tmp_path / "eval.yaml").write_text(yaml.safe_dump(config))
        proc = subprocess.run([sys.executable, "-m", "ctxsynth.cli", "eval", "eval.yaml"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "HTTP 404 on the first request (not_found)" in _error_line(proc)
    assert not list((tmp_path / "runs" / "eval" / "e").glob("*scores*"))
