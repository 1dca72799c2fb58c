"""Money on the card: the cost of a model's token usage from the run's price table
(ctxsynth.llm.prices); unknown (None) for a model the table lacks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ctxsynth.llm.prices import price_of


class TokenUsage(Protocol):
    prompt_tokens: int
    completion_tokens: int


def cost_of(usage: TokenUsage, prices: Mapping[str, Any] | None, model: str) -> float | None:
    """US dollars (or whatever unit the table uses) for this usage, None when the model has no price."""
    price = price_of(prices, model)
    return price.cost(usage.prompt_tokens, usage.completion_tokens) if price is not None else None
