"""Where the `openai` backend connects and with what: local-server detection (no key needed there),
credentials in a base URL turned into the header httpx would send, and the SDK's aiohttp transport
with one SSL context per process (ctxsynth.llm.openai.backend builds its client from these;
ctxsynth.llm.openai.probe shares the placeholder key)."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
PLACEHOLDER_KEY = "sk-local-no-key"


def is_local(base_url: str | None) -> bool:
    """Whether base_url names a server on this machine (no key needed, hedges cost nothing)."""
    if base_url is None:
        return False
    host = (urlsplit(base_url).hostname or "").lower()
    return host in LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def url_credentials(base_url: str | None) -> tuple[str | None, dict[str, str] | None]:
    """A base_url with user:password@ becomes the URL without them and an `Authorization: Basic`
    header, which is what the SDK's default HTTP client (httpx) does with such a URL: its credentials
    replace the bearer key. The aiohttp transport refuses the URL outright (credentials in the URL
    together with an Authorization header), so every request failed before."""
    if not base_url:
        return base_url, None
    parts = urlsplit(base_url)
    if parts.username is None and parts.password is None:
        return base_url, None
    import base64

    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


@functools.cache
def ssl_context() -> Any:
    """The SDK's default SSL context (its default verification), built once per process: building it
    reads the CA store, ~30 ms of every `generate` call otherwise. None without httpx2."""
    try:
        from httpx2 import create_ssl_context  # the HTTP library of the pinned SDK
    except ImportError:
        return None
    return create_ssl_context(verify=True, trust_env=True)


def http_client() -> Any:
    """The SDK's aiohttp transport (`openai[aiohttp]`) where it is installed: its connection pool costs
    a fraction of the default one's CPU per request at 64 connections. The default client otherwise.
    The transport shares one SSL context per process (`ssl_context`)."""
    import openai

    factory = getattr(openai, "DefaultAioHttpClient", None)
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return None
    if factory is None:
        return None
    context = ssl_context()
    return factory() if context is None else factory(verify=context)
