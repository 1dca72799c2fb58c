"""The shipped OpenAI-compatible test server: its protocol, injection order, counters and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

from ctxsynth.testing import Fault, Hit, OpenAIServer, Reply


def post(url: str, body: object) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/chat/completions", data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, dict(reply.headers), json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def chat(text: str) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}], "temperature": 0.0}


def test_replies_follow_the_chat_completions_shape() -> None:
    with OpenAIServer(lambda body: Reply("hi there", "stop", {"prompt_tokens": 3, "completion_tokens": 2,
                                                               "total_tokens": 5})) as server:
        status, _, body = post(server.url, chat("hello"))
    assert status == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi there"}
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"]["total_tokens"] == 5


def test_injections_are_used_in_order_then_the_rule_then_normal_replies() -> None:
    seen: list[int] = []

    def rule(hit: Hit) -> Fault | None:
        seen.append(hit.n)
        return Fault.http_error(503) if hit.n == 3 else None

    with OpenAIServer(fault_rule=rule) as server:
        server.inject(Fault.rate_limit(retry_after=7), times=1)
        server.inject(Fault.http_error(500), times=1)
        statuses = [post(server.url, chat("same"))[:2] for _ in range(4)]
        assert server.hits == 4 and list(server.hits_by_key().values()) == [4]
        assert [r.outcome for r in server.records()] == ["http_429", "http_500", "http_503", "ok"]
    assert [s for s, _ in statuses] == [429, 500, 503, 200]
    assert statuses[0][1]["Retry-After"] == "7"
    assert seen == [3, 4]  # the rule is asked only once the injections are used up


def test_bad_bodies_and_unknown_routes_are_client_errors_not_counted_as_hits() -> None:
    with OpenAIServer() as server:
        assert post(server.url, {"no": "messages"})[0] == 400
        assert post(server.url.replace("/v1", "/v2/other"), chat("x"))[0] == 404
        assert server.hits == 0


def test_the_module_runs_as_a_command_and_serves_models() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ctxsynth.testing.serve", "--port", "0",
                             "--model", "cli-model"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split()[1]
        with urllib.request.urlopen(f"{url}/models", timeout=5) as reply:
            models = json.loads(reply.read())
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert [m["id"] for m in models["data"]] == ["cli-model"]
    assert "Warning" not in err


def test_a_match_limits_an_injection_to_matching_requests() -> None:
    with OpenAIServer() as server:
        server.inject(Fault.http_error(500), times=2, match=lambda b: b["messages"][0]["content"] == "b")
        codes = [post(server.url, chat(t))[0] for t in ("a", "b", "a", "b", "b")]
    assert codes == [200, 500, 200, 500, 200]


def test_random_faults_are_a_function_of_seed_request_and_attempt_in_equal_shares() -> None:
    from collections import Counter

    from ctxsynth.testing.scripting import FAULT_KINDS, random_faults

    rule, again, other = random_faults(0.2, seed=1), random_faults(0.2, seed=1), random_faults(0.2, seed=2)
    hits = [Hit(f"key{i}", n, 0, {}) for i in range(5000) for n in (1, 2)]
    drawn = [rule(h) for h in hits]
    assert drawn == [again(h) for h in reversed(hits)][::-1]  # arrival order does not matter
    assert drawn != [other(h) for h in hits]
    kinds = Counter("stall" if f.kind == "stall" else f.kind if f.kind != "status" else f"http_{f.status}"
                    for f in drawn if f is not None)
    assert 0.18 < sum(kinds.values()) / len(hits) < 0.22
    assert set(kinds) == {"http_429", "http_500", "stall", "malformed", "truncated"} and len(FAULT_KINDS) == 5
    assert max(kinds.values()) / min(kinds.values()) < 1.25
    assert all(f.seconds == 30.0 for f in drawn if f is not None and f.kind == "stall")


def test_overload_above_refuses_at_once_and_stats_measure_idle_time() -> None:
    import threading
    import time

    with OpenAIServer(latency_s=0.3, overload_above=1) as server:
        out: list[int] = []
        workers = [threading.Thread(target=lambda i=i: out.append(post(server.url, chat(f"q{i}"))[0])) for i in range(3)]
        for w in workers:
            w.start()
            time.sleep(0.05)
        for w in workers:
            w.join()
        time.sleep(0.2)
        post(server.url, chat("after a pause"))
        stats = server.stats()
    assert sorted(out) == [200, 429, 429]
    assert stats["hits"] == 4 and stats["outcomes"] == {"ok": 2, "http_429": 2}
    assert 0.15 < stats["idle_s"] < 0.6 and 0.0 < stats["idle_share"] < 0.6


def test_the_cli_serves_faults_and_its_stats_from_another_process() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ctxsynth.testing.serve", "--port", "0",
                             "--fault-rate", "1", "--fault-kinds", "server_error"], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[1]  # type: ignore[union-attr]
        assert post(url, chat("x"))[0] == 500
        with urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=5) as reply:
            assert json.loads(reply.read())["outcomes"] == {"http_500": 1}
    finally:
        proc.kill()
        proc.wait()
