"""A spend limit for paid generation: `llm.max_cost_usd` stops a run cleanly when the spend reaches it.

`BudgetedBackend` sits over the cached backend. It sends requests in chunks (the backend's
concurrency), prices each answered request that did not come from the cache with the run's price
table (`report.prices`) — a reply cut at the token budget and each hedged attempt
(ctxsynth.llm.hedging) included, since the provider bills them — and adds it to a spend ledger in the run directory (`_state/spend.json`),
so the limit holds across resumes. Before each chunk it compares the ledger with the limit and,
once reached, raises `BudgetReached`: the stage stops without being marked complete, every answer
received so far is in the request cache, and rerunning with a higher limit continues from there
without paying for them again. A chunk already sent is never cut off, so the spend can exceed
the limit by at most one chunk's worth.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxsynth.errors import UserError
from ctxsynth.io import atomic_write_text
from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, ResultCallback
from ctxsynth.llm.prices import Price, money, price_of

log = logging.getLogger(__name__)

LEDGER = "spend.json"


class BudgetReached(UserError):
    """The run spent its llm.max_cost_usd; finished work is kept and a rerun with more budget resumes."""


def request_cost(usage: dict[str, Any], price: Price) -> float:
    return price.cost(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))


def model_price(prices: dict[str, Any], model: str) -> Price:
    """The price table's entry for the model; a spend limit without a price is a config error."""
    price = price_of(prices, model)
    if price is None:
        raise UserError(f"llm.max_cost_usd needs the price of {model!r}: set report.prices.{model}."
                        "input_per_mtok and report.prices.{model}.output_per_mtok (USD per million tokens)")
    return price


class BudgetedBackend(Backend):
    """Stops generation when the run's spend (kept in `ledger`) reaches `limit_usd`.

    It keeps the base class's round-by-round `stream` on purpose: requests go out in chunks of
    `chunk` and the spend is checked before each, so at most one chunk passes the limit (a
    streaming backend may take requests ahead of sending them, past any check at take time)."""

    def __init__(self, inner: Backend, limit_usd: float, price: Price, ledger: Path,
                 chunk: int = 16) -> None:
        super().__init__(inner.model)
        self.inner, self.limit, self.price, self.ledger = inner, float(limit_usd), price, Path(ledger)
        self.chunk = max(1, int(chunk))
        self.name = inner.name  # type: ignore[misc]
        self.spent, self.paid_requests = self._load()

    def _load(self) -> tuple[float, int]:
        if not self.ledger.exists():
            return 0.0, 0
        data = json.loads(self.ledger.read_text(encoding="utf-8"))
        return float(data.get("usd", 0.0)), int(data.get("requests", 0))

    def _save(self) -> None:
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"usd": round(self.spent, 8), "requests": self.paid_requests, "limit_usd": self.limit})
        atomic_write_text(self.ledger, text + "\n")

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def check(self) -> None:
        if self.spent >= self.limit:
            raise BudgetReached(
                f"spend limit reached: {money(self.spent)} spent on {self.paid_requests} requests, "
                f"llm.max_cost_usd={self.limit}; every answer so far is kept in the request cache: raise "
                "llm.max_cost_usd and rerun the same command to continue without paying for them again")

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        results: list[ChatResult] = []
        for start in range(0, len(requests), self.chunk):
            self.check()
            part = requests[start:start + self.chunk]
            callback = (lambda i, r, s=start: on_result(s + i, r)) if on_result else None
            answered = self.inner.generate(part, on_result=callback)
            for result in answered:
                if result.answered and not result.cached:  # a reply cut at the budget is billed too
                    # each hedge (a second attempt beside a slow one) is billed as the reply it raced
                    self.spent += request_cost(result.usage, self.price) * (1 + result.hedges)
                    self.paid_requests += 1 + result.hedges
            self._save()
            results.extend(answered)
        return results

    def close(self) -> None:
        self.inner.close()
