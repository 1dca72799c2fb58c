"""The `openai` backend's request path: one chat-completions body out, the reply's bytes back.

`chat_sender(client)` returns a coroutine function `send(body) -> bytes`. Where the SDK client is a
plain `openai.AsyncOpenAI` over its aiohttp transport, `send` posts the JSON body straight through
that transport's own aiohttp session, with the URL, headers and timeouts the SDK computed once for
`POST /chat/completions`; elsewhere it is the SDK's `client.post`.

Why: the SDK rebuilds the same request for every call (typed options, a deep copy of the body,
httpx's URL and header objects, the httpx -> aiohttp shim); at 64 requests in flight that CPU is
what separates the client from C / latency. Measured on the 2-core development VM (3,000 requests
at 0.05 s latency, C = 64): ~1.5-2.0 ms of client CPU per request through the SDK, ~0.4 ms for a
bare aiohttp client; see docs/results/client.md for this path's figures.

The direct path is built from the SDK's own pieces, so what goes out and what comes back mean the
same as through `client.post(..., cast_to=bytes)`:

- request: the SDK's `_build_request` makes one template request (API key, base URL, default
  headers and query, organization and project headers, `OPENAI_CUSTOM_HEADERS`, the SDK's
  platform and timeout headers, retry count 0: this backend retries itself); the body is encoded
  with the SDK's `openapi_dumps`; the aiohttp call takes the arguments the SDK's transport passes
  (no redirects followed by aiohttp, no automatic decompression, the SDK's connect/read/pool
  timeouts);
- errors: aiohttp's exceptions go through the transport's own mapping to httpx2's and then become
  `openai.APITimeoutError` / `openai.APIConnectionError` as in the SDK's request loop; a status
  outside 2xx becomes the SDK's own `APIStatusError` subclass via `_make_status_error_from_response`
  (same message, body and headers, so Retry-After reads the same);
- a compressed reply is decoded by httpx2 as the SDK would; a redirect is handed to the SDK, which
  follows it.

Not taken (the SDK's `post` instead): any client other than exactly `openai.AsyncOpenAI` (Azure
and other subclasses), providers, workload identity, an API-key callable (token provider), custom
auth, an idempotency header, event hooks or auth on the HTTP client, a transport that is not the
SDK's aiohttp one (a user-supplied HTTP client, a proxy), or an SDK whose private pieces differ
from the ones read here. Cookies the server sets are kept by the aiohttp session (not by httpx2's
jar); nothing here relies on them.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

PATH = "/chat/completions"
# SDK versions whose private pieces read here were checked against the SDK's own `post`
# (tests/llm/test_openai_direct.py); pyproject pins openai to this range
VERIFIED_SDK: tuple[str, ...] = ("3.51.",)
_FALLBACKS_SAID: set[str] = set()
Send = Callable[[dict[str, Any]], Awaitable[bytes]]


def sdk_sender(client: Any) -> Send:
    """Post chat-completions bodies through the SDK's own `client.post` (the default path)."""

    async def through_sdk(body: dict[str, Any]) -> bytes:
        return await client.post(PATH, body=body, cast_to=bytes)  # type: ignore[no-any-return]

    return through_sdk


def _fall_back(reason: str) -> None:
    """Say once per process why the direct path is not taken (then the SDK's `post` is used)."""
    if reason not in _FALLBACKS_SAID:
        _FALLBACKS_SAID.add(reason)
        log.info("openai: direct chat path not used (%s); posting through the SDK", reason)


async def chat_sender(client: Any) -> Send:
    """The fastest exact way to post chat-completions bodies with `client` (see the module docstring)."""
    import openai

    through_sdk = sdk_sender(client)
    if not openai.__version__.startswith(VERIFIED_SDK):
        _fall_back(f"openai {openai.__version__} is not a verified version ({', '.join(VERIFIED_SDK)})")
        return through_sdk
    try:
        direct = await DirectChat.build(client, through_sdk)
    except Exception as exc:  # noqa: BLE001 - any surprise in the SDK's internals: its own path is exact
        _fall_back(f"{type(exc).__name__}: {exc}")
        return through_sdk
    if direct is None:
        _fall_back(f"a {type(client).__name__} client over its own transport")
        return through_sdk
    return direct.send


class DirectChat:
    """Posts a body through the SDK transport's aiohttp session with a request template built by the SDK."""

    def __init__(self, client: Any, template: Any, session: Any, timeout: Any, fallback: Send) -> None:
        from multidict import CIMultiDict
        from openai._utils._json import openapi_dumps
        from openai._vendor.httpx_aiohttp.transport import map_aiohttp_exceptions

        self._client, self._template, self._session, self._timeout = client, template, session, timeout
        self._fallback = fallback
        self._url = str(template.url)
        self._headers = CIMultiDict((k, v) for k, v in template.headers.multi_items() if k.lower() != "content-length")
        self._dumps, self._map = openapi_dumps, map_aiohttp_exceptions

    @classmethod
    async def build(cls, client: Any, fallback: Send) -> DirectChat | None:
        """None where the direct path could differ from the SDK's (see the module docstring)."""
        import httpx2
        import openai
        from aiohttp import ClientSession, ClientTimeout
        from openai._models import FinalRequestOptions
        from openai._vendor.httpx_aiohttp.transport import AiohttpTransport

        if type(client) is not openai.AsyncOpenAI or not _plain_auth(client):
            return None
        http = client._client
        if not isinstance(http, httpx2.AsyncClient) or http.auth is not None or any(http.event_hooks.values()):
            return None
        options = await client._prepare_options(FinalRequestOptions.construct(method="post", url=PATH, json_data={}))
        template = client._build_request(options, retries_taken=0)
        await client._prepare_request(template)
        transport = http._transport_for_url(template.url)
        if type(transport) is not AiohttpTransport or transport.proxy is not None or transport.uds is not None:
            return None
        if template.extensions.get("sni_hostname") is not None:
            return None
        if not isinstance(transport.client, ClientSession):  # what the transport does on its first request
            transport.client = transport.get_client()
        limits = template.extensions.get("timeout", {})
        timeout = ClientTimeout(sock_connect=limits.get("connect"), sock_read=limits.get("read"),
                                connect=limits.get("pool"))
        return cls(client, template, transport.client, timeout, fallback)

    async def send(self, body: dict[str, Any]) -> bytes:
        """The reply's bytes for a 2xx answer; the SDK's exceptions otherwise."""
        import httpx2
        import openai

        data = self._dumps(body)
        try:
            with self._map():
                async with self._session.request("POST", self._url, headers=self._headers, data=data,
                                                 allow_redirects=False, auto_decompress=False, compress=False,
                                                 timeout=self._timeout) as resp:
                    raw: bytes = await resp.read()
                    status, headers = resp.status, resp.raw_headers
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=self._template) from exc
        except (httpx2.RequestError, ssl.SSLError) as exc:
            raise openai.APIConnectionError(request=self._template) from exc
        if 200 <= status < 300 and not any(name.lower() == b"content-encoding" for name, _ in headers):
            return raw
        return await self._unusual(status, headers, raw, body)

    async def _unusual(self, status: int, headers: Any, raw: bytes, body: dict[str, Any]) -> bytes:
        """A compressed reply, a redirect or an error status: read as the SDK reads it."""
        import httpx2

        response = httpx2.Response(status_code=status, headers=headers, content=raw, request=self._template)
        if response.is_success:
            return response.content  # decoded by Content-Encoding
        if response.has_redirect_location:
            return await self._fallback(body)  # the SDK's client follows redirects
        raise self._client._make_status_error_from_response(response) from None


def _plain_auth(client: Any) -> bool:
    """A plain API key in a bearer header: no provider, workload identity, key callable or custom auth."""
    return (client._provider_runtime is None and client.workload_identity is None
            and client._workload_identity_auth is None and client._api_key_provider is None
            and client.custom_auth is None and client._idempotency_header is None)
