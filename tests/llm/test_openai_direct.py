"""The direct chat path (`ctxsynth.llm.openai.direct`) against the SDK's own `post`, on a real local server.

Each test sends the same body both ways through the same SDK client and compares what the server
received and what came back (reply bytes, or the exception with its type, message, status, body and
headers): the direct path must be indistinguishable from the SDK's. Nothing is patched.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from ctxsynth.llm.openai.connection import http_client
from ctxsynth.llm.openai.direct import PATH, DirectChat, chat_sender
from ctxsynth.llm.openai.replies import dropped as _dropped
from ctxsynth.llm.openai.replies import status_failure as _status_failure
from ctxsynth.testing import Fault, OpenAIServer

BODY = {"model": "test-model", "messages": [{"role": "user", "content": "héllo ✓"}], "temperature": 0.0,
        "top_p": 1.0, "max_tokens": 32, "seed": 7}


def make_client(url: str, **kwargs: Any) -> openai.AsyncOpenAI:
    """As the backend builds it: no SDK retries, the SDK's aiohttp transport."""
    kwargs.setdefault("api_key", "sk-direct-test")
    kwargs.setdefault("http_client", http_client())
    return openai.AsyncOpenAI(base_url=url, max_retries=0, timeout=kwargs.pop("timeout", 5.0), **kwargs)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


async def outcome(send: Callable[[dict[str, Any]], Awaitable[bytes]], body: dict[str, Any]) -> tuple[Any, ...]:
    """What one send ends in, in the terms the backend reads."""
    try:
        raw = await send(body)
    except openai.APIStatusError as exc:
        return (type(exc), str(exc), exc.status_code, exc.body, _status_failure(exc, key="sk-direct-test"),
                exc.response.headers.get("retry-after"), exc.response.headers.get("retry-after-ms"))
    except openai.APIConnectionError as exc:
        return (type(exc), str(exc), _dropped(exc))
    try:  # the reply's "created" is the server's clock: the only field that may differ between two sends
        return ("reply", {k: v for k, v in json.loads(raw).items() if k != "created"})
    except ValueError:
        return ("reply", raw)


def both_ways(server: OpenAIServer, body: dict[str, Any] = BODY, **client_kwargs: Any) -> tuple[tuple, tuple]:
    """(direct, sdk) outcomes of the same body through one client."""

    async def scenario() -> tuple[tuple, tuple]:
        client = make_client(server.url, **client_kwargs)
        try:
            send = await chat_sender(client)
            assert isinstance(getattr(send, "__self__", None), DirectChat)
            direct = await outcome(send, body)
            sdk = await outcome(lambda b: client.post(PATH, body=b, cast_to=bytes), body)
        finally:
            await client.close()
        return direct, sdk

    return run(scenario)


def test_the_direct_path_sends_the_same_request_as_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-From-Env: env-value")
    with OpenAIServer() as server:
        direct, sdk = both_ways(server, organization="org-7", project="proj-9", default_headers={"X-Team": "ctx"},
                                default_query={"api-version": "2026-01"})
        first, second = server.records()
    assert direct == sdk and direct[0] == "reply"
    assert first.key == second.key  # the same body arrived
    assert first.path == second.path == "/v1/chat/completions?api-version=2026-01"
    sent = dict((k.lower(), v) for k, v in first.headers)
    assert sorted((k.lower(), v) for k, v in first.headers) == sorted((k.lower(), v) for k, v in second.headers)
    assert (sent["authorization"], sent["openai-organization"], sent["openai-project"], sent["x-team"],
            sent["x-from-env"], sent["x-stainless-retry-count"], sent["x-stainless-read-timeout"]) == (
        "Bearer sk-direct-test", "org-7", "proj-9", "ctx", "env-value", "0", "5.0")


@pytest.mark.parametrize("fault", [
    Fault.http_error(400, "bad field"), Fault.http_error(401, "invalid key"), Fault.http_error(403, "no access"),
    Fault.http_error(404, "no such model"), Fault.http_error(500), Fault.http_error(503),
    Fault.rate_limit(retry_after=3), Fault.rate_limit(retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
    Fault.rate_limit(retry_after_ms=1500), Fault.malformed(), Fault.truncated(), Fault.drop(),
], ids=["400", "401", "403", "404", "500", "503", "429-seconds", "429-date", "429-ms", "malformed", "truncated",
        "drop"])
def test_every_fault_ends_the_same_way_on_both_paths(fault: Fault) -> None:
    with OpenAIServer() as server:
        server.inject(fault, times=2)
        direct, sdk = both_ways(server)
        assert [r.outcome for r in server.records()] == [server.records()[0].outcome] * 2
    assert direct == sdk


def test_a_stall_times_out_the_same_way_on_both_paths() -> None:
    with OpenAIServer() as server:
        server.inject(Fault.stall(3.0), times=2)
        direct, sdk = both_ways(server, timeout=0.5)
    assert direct == sdk and direct[0] is openai.APITimeoutError and direct[2] is False  # a timeout, not a drop


def test_a_closed_port_is_a_dropped_connection_on_both_paths() -> None:
    with OpenAIServer() as server:
        url = server.url
    direct, sdk = both_ways(type("Gone", (), {"url": url})())  # type: ignore[arg-type]
    assert direct == sdk and direct[2] is True


def test_a_compressed_reply_is_decoded_as_the_sdk_decodes_it() -> None:
    async def scenario() -> bytes:
        with OpenAIServer() as server:
            client = make_client(server.url)
            try:
                send = await chat_sender(client)
                return await send.__self__._unusual(200, [(b"Content-Encoding", b"gzip")],  # type: ignore[attr-defined]
                                                    gzip.compress(b'{"ok": true}'), BODY)
            finally:
                await client.close()

    assert run(scenario) == b'{"ok": true}'


def test_a_redirect_is_followed_through_the_sdk() -> None:
    with OpenAIServer() as server:
        target = server.url

        class Redirect(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(307)
                self.send_header("Location", target + "/chat/completions")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        redirector = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        threading.Thread(target=redirector.serve_forever, daemon=True).start()
        try:
            front = type("Front", (), {"url": f"http://127.0.0.1:{redirector.server_address[1]}/v1"})()
            direct, sdk = both_ways(front)  # type: ignore[arg-type]
        finally:
            redirector.shutdown()
            redirector.server_close()
        assert server.hits == 2
    assert direct == sdk and direct[0] == "reply"


def test_clients_the_direct_path_cannot_match_use_the_sdk() -> None:
    async def key() -> str:
        return "sk-from-a-provider"

    async def scenario(url: str) -> list[tuple[str, bool, tuple]]:
        clients = {
            "azure": openai.AsyncAzureOpenAI(api_key="k", azure_endpoint=url.removesuffix("/v1"), api_version="2024-06-01",
                                             http_client=http_client(), max_retries=0),
            "token provider": make_client(url, api_key=key),
            "default httpx client": make_client(url, http_client=None),
            "proxy": make_client(url, http_client=openai.DefaultAioHttpClient(proxy="http://127.0.0.1:9")),
        }
        out = []
        for name, client in clients.items():
            send = await chat_sender(client)
            direct = isinstance(getattr(send, "__self__", None), DirectChat)
            result = await outcome(send, BODY) if name in ("token provider", "default httpx client") else ()
            out.append((name, direct, result))
            await client.close()
        return out

    with OpenAIServer() as server:
        results = run(lambda: scenario(server.url))
        auth = [r.authorization for r in server.records()]
    assert [(name, direct) for name, direct, _ in results] == [
        ("azure", False), ("token provider", False), ("default httpx client", False), ("proxy", False)]
    assert all(result[0] == "reply" for _, _, result in results if result)
    assert auth == ["Bearer sk-from-a-provider", "Bearer sk-direct-test"]
