"""Preflight's probe of an OpenAI-protocol endpoint: one GET /models before any paid request."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import openai

from ctxsynth.errors import BackendUnavailable
from ctxsynth.llm.openai.connection import PLACEHOLDER_KEY

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 15.0


def probe_models(model: str, options: Mapping[str, Any], where: str, endpoint: str, key_var: str) -> str | None:
    """One GET /models: the endpoint answers and accepts the key (else BackendUnavailable); a warning
    when it does not list the model."""
    base_url = options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
    key = os.environ.get(key_var) or PLACEHOLDER_KEY  # a local server needs none (checked before)
    client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=1, timeout=PROBE_TIMEOUT_S)
    try:
        served = [m.id for m in client.models.list()]
    except openai.AuthenticationError:
        raise BackendUnavailable(f"{where}: {endpoint} refused the API key in {key_var} (HTTP 401) during preflight; "
                                 "check the key", endpoint=endpoint, status=401, cause="auth") from None
    except openai.PermissionDeniedError:
        raise BackendUnavailable(f"{where}: {endpoint} refused the API key in {key_var} (HTTP 403) during preflight; "
                                 "check the key's permissions", endpoint=endpoint, status=403, cause="auth") from None
    except openai.NotFoundError:
        log.info("%s: %s has no /models route; the model is checked by the first request", where, endpoint)
        return None
    except (openai.APIConnectionError, openai.APITimeoutError):
        raise BackendUnavailable(f"{where}: cannot reach {endpoint} during preflight; check that the server is up "
                                 "and base_url is right (or pass --no-preflight)", endpoint=endpoint,
                                 cause="outage") from None
    except openai.APIStatusError as e:
        raise BackendUnavailable(f"{where}: {endpoint} answered HTTP {e.status_code} during preflight; "
                                 "retry later or pass --no-preflight", endpoint=endpoint, status=e.status_code,
                                 cause="outage") from None
    finally:
        client.close()
    if served and model not in served:  # some servers answer any name: the first request decides
        shown = ", ".join(served[:8]) + (", ..." if len(served) > 8 else "")
        return (f"{where}.model: {endpoint} does not list model {model!r} (it lists: {shown}); if the first "
                "request answers 404 the run stops at once")
    return None
