"""`ModelSpec`: which backend, which model, which options; one `check` and one `build` for all.

Every place that names a chat model (synthesis `llm:`, the filters' `closed_book.llm` and
`judge.llm`, evaluation's `model:`) holds a ModelSpec, or a subclass that adds its own sampling
fields. The YAML stays `backend: / model: / options:`. A backend declares its options by the typed
keyword arguments of its constructor and its API key by `key_env_var` / `key_env_option`
(ctxsynth.llm.base.Backend), so the checks below are generic: adding a backend adds no branch here.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ctxsynth.config import coerce
from ctxsynth.errors import ConfigError, MissingAPIKeyError
from ctxsynth.llm.backends import BACKENDS
from ctxsynth.llm.base import Backend
from ctxsynth.llm.breaker import CircuitBreaker
from ctxsynth.llm.cache import CachedBackend, RequestCache

_NOT_OPTIONS = ("self", "model")


@dataclass
class ModelSpec:
    backend: str = "transformers"  # a name in ctxsynth.llm.BACKENDS (`ctxsynth ls`)
    model: str = "smollm2-135m-instruct"
    options: dict[str, Any] = field(default_factory=dict)  # the backend's keyword arguments (base_url, ...)

    def backend_class(self) -> type[Backend]:
        return BACKENDS.get(self.backend)  # RegistryError with "did you mean" for a typo

    def checked_options(self, where: str = "llm") -> dict[str, Any]:
        """The options, type-checked against the backend's constructor; unknown names are errors."""
        cls = self.backend_class()
        params = inspect.signature(cls.__init__).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return dict(self.options)
        known = [p for p in params if p not in _NOT_OPTIONS]
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigError(f"{where}.options: {unknown} not accepted by backend {self.backend!r}; "
                              f"it takes: {', '.join(known)}")
        hints = get_type_hints(cls.__init__)
        return {k: coerce(v, hints.get(k, Any), f"{where}.options.{k}") for k, v in self.options.items()}

    def key_env(self) -> str | None:
        """The environment variable that must hold this spec's API key, or None (no key needed)."""
        return self.backend_class().key_env(self.options)

    def key_variable(self) -> str | None:
        """The variable the backend reads its key from (even where, like a local server, none is needed)."""
        cls = self.backend_class()
        if cls.key_env_var is None:
            return None
        return str(self.options.get(cls.key_env_option, cls.key_env_var)) if cls.key_env_option else cls.key_env_var

    def concurrency(self) -> int | None:
        """Requests in flight at most (the backend's `max_concurrency`), None for a backend without the option."""
        return self.backend_class().concurrency(self.options)

    def missing_key(self) -> str | None:
        """Why this spec cannot authenticate (its key variable is unset), or None."""
        env = self.key_env()
        if env is None or os.environ.get(env):
            return None
        return (f"backend {self.backend!r} needs an API key: set the environment variable {env} "
                "(the key is read from the environment only)")

    def check(self, where: str = "llm", need_key: bool = False) -> None:
        """Backend name and options (types, names); with need_key, also the API key's variable."""
        self.checked_options(where)
        problem = self.missing_key() if need_key else None
        if problem:
            raise MissingAPIKeyError(f"{where}: {problem}")

    def endpoint(self) -> str:
        """Where requests go, for messages: the base URL without credentials, else backend and model."""
        base_url = self.options.get("base_url")
        if base_url:
            return redact_url(str(base_url))
        if self.key_env() is not None:  # a hosted API at its default address
            return f"{self.backend} default endpoint (model {self.model})"
        return f"{self.backend} backend (model {self.model})"

    def build(self, cache: Path | None = None, max_consecutive_failures: int | None = None) -> Backend:
        """The backend, behind a circuit breaker when `max_consecutive_failures` is given and then
        the request cache at `cache` (a cache.sqlite path) when given."""
        options = self.checked_options()
        try:
            backend = self.backend_class()(model=self.model, **options)
        except TypeError as e:
            raise ConfigError(f"options for backend {self.backend!r}: {e}") from None
        if max_consecutive_failures is not None:
            backend = CircuitBreaker(backend, self.endpoint(), max_consecutive_failures, self.key_variable())
        return CachedBackend(backend, RequestCache(cache)) if cache is not None else backend


_SECRET_QUERY = re.compile(r"(?i)^(api[-_]?key|key|token|access[-_]?token|secret|password|sig|signature)$")


def redact_url(url: str) -> str:
    """The URL with any user:password@ and secret-looking query values replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(f"{k}=***" if _SECRET_QUERY.match(k) else f"{k}={v}" for k, v in parse_qsl(parts.query, True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_URL_SECRET_PARAM = re.compile(r"(?i)([?&](?:api[-_]?key|key|token|access[-_]?token|secret|password|sig|signature)=)[^&\s]+")


def redact_text(text: str) -> str:
    """Any URL inside free text (a log line, an error) without user:password@ or secret query values."""
    return _URL_SECRET_PARAM.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", text))


class RedactCredentials(logging.Filter):
    """A logging filter: credentials inside URLs (user:password@, ?api_key=) never reach the
    terminal or a log file (the CLI's handler and every worker's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def redact_config(data: Any) -> Any:
    """A config tree (plain dicts) with every `base_url` value passed through redact_url."""
    if isinstance(data, dict):
        return {k: redact_url(v) if k == "base_url" and isinstance(v, str) else redact_config(v) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_config(v) for v in data]
    return data
