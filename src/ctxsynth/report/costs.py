"""Money from token usage and a user's price table {model: {"input_per_mtok", "output_per_mtok"}}.

Prices change and differ by provider, so none are built in: without a table, or for a model the
table lacks, the cost is unknown (None) rather than guessed.
"""

from __future__ import annotations

from typing import Any, Protocol

from ctxsynth.errors import ConfigError


class TokenUsage(Protocol):
    prompt_tokens: int
    completion_tokens: int


def cost_of(usage: TokenUsage, prices: dict[str, Any] | None, model: str) -> float | None:
    """US dollars (or whatever unit the table uses) for this usage, None when the model has no price."""
    if not prices or model not in prices:
        return None
    price = prices[model]
    try:
        per_in, per_out = float(price["input_per_mtok"]), float(price["output_per_mtok"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"price table entry for {model!r} needs numeric input_per_mtok and output_per_mtok") from exc
    return usage.prompt_tokens / 1e6 * per_in + usage.completion_tokens / 1e6 * per_out


def money(amount: float) -> str:
    """Dollars with cents, or four decimals below one dollar (small runs cost fractions of a cent)."""
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"
