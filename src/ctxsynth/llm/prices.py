"""Prices: the one typed price entry, `Price(input_per_mtok, output_per_mtok)` per model.

`report.prices` loads into it (a missing or non-numeric field is a config error at load), and the
spend limit (ctxsynth.llm.budget), `ctxsynth estimate` and the card (ctxsynth.report.costs) all price
through `Price.cost`. Prices change and differ by provider, so none are built in: without a table,
or for a model the table lacks, the cost is unknown (None) rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ctxsynth.errors import ConfigError


@dataclass(frozen=True)
class Price:
    """USD (or the table's unit) per million input and per million output tokens of one model."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


def as_price(entry: Any, model: str) -> Price:
    """A price table entry as a Price (tables given in code may hold plain mappings)."""
    if isinstance(entry, Price):
        return entry
    try:
        return Price(float(entry["input_per_mtok"]), float(entry["output_per_mtok"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"price table entry for {model!r} needs numeric input_per_mtok and output_per_mtok") from exc


def price_of(prices: Mapping[str, Any] | None, model: str) -> Price | None:
    """The model's price, None when the table has none for it."""
    if not prices or model not in prices:
        return None
    return as_price(prices[model], model)


def money(amount: float) -> str:
    """Dollars with cents, or four decimals below one dollar (small runs cost fractions of a cent)."""
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"
