"""The spend ledger counts what the provider bills: replies cut at the token budget and hedged
attempts, not only complete answers (against the real local OpenAI-protocol server)."""

from __future__ import annotations

import json
from pathlib import Path

from ctxsynth.llm.base import ChatRequest, SamplingParams
from ctxsynth.llm.budget import BudgetedBackend
from ctxsynth.llm.openai.backend import OpenAIBackend
from ctxsynth.llm.prices import Price
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.scripting import Fault, Reply

PRICE = Price(input_per_mtok=1e6, output_per_mtok=1e6)  # $1 a token


def _request(i: int) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": f"question {i}"}], SamplingParams(max_tokens=8), id=str(i))


def test_a_reply_cut_at_the_budget_is_billed(tmp_path: Path) -> None:
    def responder(body: dict) -> Reply:
        cut = "question 1" in body["messages"][-1]["content"]
        return Reply("partial" if cut else "done", "length" if cut else "stop",
                     {"prompt_tokens": 3, "completion_tokens": 8 if cut else 2})

    with OpenAIServer(responder) as server:
        backend = BudgetedBackend(OpenAIBackend("m", base_url=server.url, max_retries=0), 100.0, PRICE,
                                  tmp_path / "spend.json")
        results = backend.generate([_request(0), _request(1)])
    assert [r.ok for r in results] == [True, False] and results[1].failure == "truncated"
    ledger = json.loads((tmp_path / "spend.json").read_text())
    assert ledger["requests"] == 2 and ledger["usd"] == (3 + 2) + (3 + 8)


def test_hedges_are_off_by_default_away_from_this_machine_and_billed_when_sent(tmp_path: Path) -> None:
    assert OpenAIBackend("m", base_url="https://api.example.com/v1").hedge is False
    assert OpenAIBackend("m", base_url="http://127.0.0.1:9/v1").hedge is True
    assert OpenAIBackend("m", base_url="https://api.example.com/v1", hedge=True).hedge is True
    assert OpenAIBackend("m").direct is False  # the direct SDK path is opt-in

    # the last request's first attempt stalls: once the latencies are known a twin goes out (a hedge)
    requests = [_request(i) for i in range(48)]
    with OpenAIServer(latency_s=0.05) as server:
        server.inject(Fault.stall(20.0), match=lambda body: body["messages"][-1]["content"] == "question 47")
        inner = OpenAIBackend("test-model", base_url=server.url, max_concurrency=8, timeout_s=60.0)
        backend = BudgetedBackend(inner, 1e9, PRICE, tmp_path / "spend.json", chunk=48)
        results = backend.generate(requests)
        hits = server.hits
    assert all(r.ok for r in results) and hits == 49
    assert [r.hedges for r in results] == [0] * 47 + [1]
    ledger = json.loads((tmp_path / "spend.json").read_text())
    assert ledger["requests"] == 49  # the hedge is paid for like the reply it raced
    assert ledger["usd"] == sum(r.usage["prompt_tokens"] + r.usage["completion_tokens"] for r in results) + \
        results[47].usage["prompt_tokens"] + results[47].usage["completion_tokens"]
