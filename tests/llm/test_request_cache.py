"""The SQLite request cache over the real `openai` backend: reruns send nothing already answered,
including after the process is killed with SIGKILL part-way through a batch."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctxsynth.llm.base import ChatRequest, SamplingParams, request_key
from ctxsynth.llm.cache import CachedBackend, RequestCache
from ctxsynth.llm.openai.backend import OpenAIBackend
from ctxsynth.testing import Fault, OpenAIServer, request_fingerprint

SECRET = "sk-cache-test-SECRET-987"

# The child process builds the same requests as `make_requests` and runs them through the cache.
CHILD = """
import sys
from pathlib import Path
from ctxsynth.llm.base import ChatRequest, SamplingParams
from ctxsynth.llm.cache import CachedBackend, RequestCache
from ctxsynth.llm.openai.backend import OpenAIBackend

url, path, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
requests = [ChatRequest([{"role": "user", "content": f"question {i}"}], SamplingParams(temperature=0.0,
            max_tokens=32, seed=i)) for i in range(n)]
backend = CachedBackend(OpenAIBackend("test-model", base_url=url, max_concurrency=2), RequestCache(path))
backend.generate(requests)
"""


def make_requests(n: int) -> list[ChatRequest]:
    return [
        ChatRequest([{"role": "user", "content": f"question {i}"}], SamplingParams(temperature=0.0, max_tokens=32, seed=i))
        for i in range(n)
    ]


def server_key(request: ChatRequest) -> str:
    """The test server's fingerprint of the body the backend sends for `request`."""
    p = request.params
    body = {"model": "test-model", "messages": list(request.messages), "temperature": p.temperature,
            "top_p": p.top_p, "max_tokens": p.max_tokens, "seed": p.seed}
    return request_fingerprint(body)


def cached_backend(server: OpenAIServer, path: Path, **options: object) -> CachedBackend:
    inner = OpenAIBackend("test-model", base_url=server.url, backoff_base_s=0.01, backoff_max_s=0.05, **options)
    return CachedBackend(inner, RequestCache(path))


def test_a_second_run_is_answered_from_the_cache_and_sends_nothing(tmp_path: Path) -> None:
    requests = make_requests(8)
    with OpenAIServer() as server:
        first = cached_backend(server, tmp_path / "cache.sqlite")
        answers = first.generate(requests)
        first.close()
        assert server.hits == 8
        second = cached_backend(server, tmp_path / "cache.sqlite")
        called: list[int] = []
        again = second.generate(requests, on_result=lambda i, r: called.append(i))
        assert server.hits == 8
    assert [r.text for r in again] == [r.text for r in answers] == [f"echo: question {i}" for i in range(8)]
    assert all(r.cached for r in again) and not any(r.cached for r in answers)
    assert sorted(called) == list(range(8))


def test_failed_requests_are_not_cached_and_a_rerun_sends_only_them(tmp_path: Path) -> None:
    requests = make_requests(4)
    with OpenAIServer() as server:
        server.inject(Fault.http_error(400, "rejected once"), match=lambda b: b["messages"][0]["content"] == "question 2")
        first = cached_backend(server, tmp_path / "c.sqlite").generate(requests)
        assert first[2].error == "http_400: rejected once" and server.hits == 4
        second = cached_backend(server, tmp_path / "c.sqlite").generate(requests)
        assert server.hits == 5
    assert [r.cached for r in second] == [True, True, False, True]
    assert all(r.ok for r in second)


def test_identical_requests_in_one_batch_are_sent_once(tmp_path: Path) -> None:
    requests = make_requests(3) * 2
    with OpenAIServer() as server:
        called: list[int] = []
        results = cached_backend(server, tmp_path / "c.sqlite").generate(requests, on_result=lambda i, r: called.append(i))
        assert server.hits == 3
    assert [r.text for r in results] == [f"echo: question {i}" for i in (0, 1, 2, 0, 1, 2)]
    assert sorted(called) == list(range(6))


def test_cache_rows_never_hold_the_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTXSYNTH_CACHE_TEST_KEY", SECRET)
    with OpenAIServer(lambda body: "fine") as server:
        backend = cached_backend(server, tmp_path / "c.sqlite", api_key_env="CTXSYNTH_CACHE_TEST_KEY")
        assert all(r.ok for r in backend.generate(make_requests(3)))
        backend.close()
        assert {r.authorization for r in server.records()} == {f"Bearer {SECRET}"}
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        rows = db.execute("SELECT * FROM responses").fetchall()
    assert len(rows) == 3 and SECRET not in repr(rows)
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


def test_after_kill_9_a_rerun_sends_only_the_requests_not_yet_cached(tmp_path: Path) -> None:
    """Nothing received before SIGKILL is lost, and nothing cached is sent again."""
    n, path = 30, tmp_path / "cache.sqlite"
    requests = make_requests(n)
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    with OpenAIServer(latency_s=0.1) as server:
        child = subprocess.Popen([sys.executable, "-c", CHILD, server.url, str(path), str(n)], env=env)
        deadline = time.monotonic() + 30
        while server.hits < 10 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
        answered_before = sum(1 for r in server.records() if r.outcome == "ok")
        hits_before = server.hits_by_key()

        backend = cached_backend(server, path, max_concurrency=4)
        keys = [request_key(backend.identity(), r) for r in requests]
        was_cached = {k for k in keys if backend.cache.get(k) is not None}
        assert 0 < len(was_cached) < n
        assert len(was_cached) >= answered_before - 2  # at most the two in flight were not yet stored
        results = backend.generate(requests)
        hits_after = server.hits_by_key()
    assert [r.text for r in results] == [f"echo: question {i}" for i in range(n)]
    assert [r.cached for r in results] == [k in was_cached for k in keys]
    for request, key in zip(requests, keys, strict=True):
        fingerprint = server_key(request)
        assert hits_after[fingerprint] - hits_before.get(fingerprint, 0) == (0 if key in was_cached else 1)
    assert len(backend.cache) == n
