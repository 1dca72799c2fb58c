"""Building the chat backend a model-asking filter uses, when the caller does not hand one over.

The runner normally passes its own (cached) backend; otherwise the filter section's `llm` names
one, wrapped in the request cache when a cache path is given.
"""

from __future__ import annotations

from pathlib import Path

from ctxsynth.errors import ConfigError
from ctxsynth.filters.config import FilterLLM
from ctxsynth.llm.base import Backend, SamplingParams


def build_backend(spec: FilterLLM, cache_path: Path | None = None) -> Backend:
    from ctxsynth.llm import BACKENDS
    from ctxsynth.llm.cache import CachedBackend, RequestCache

    try:
        inner = BACKENDS.get(spec.backend)(model=spec.model, **spec.options)
    except TypeError as e:
        raise ConfigError(f"filters llm.options for backend {spec.backend!r}: {e}") from None
    return CachedBackend(inner, RequestCache(cache_path)) if cache_path is not None else inner


def params(spec: FilterLLM, seed: int | None = None) -> SamplingParams:
    return SamplingParams(temperature=spec.temperature, top_p=1.0, max_tokens=spec.max_tokens, seed=seed)
