"""Fit one NIAH example to an exact token budget and record where every needle landed.

The budget counts the whole rendered chat, [user, assistant] with the tokenizer's chat template,
so room for the answer is reserved by construction. The haystack size is found by a short
fixed-point search: guess from the needle-only overhead, measure once, correct by the difference
(usually exact on the second try), never exceeding the target.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ctxsynth.errors import ConfigError
from ctxsynth.niah.haystack import HaystackSource, cut, insert
from ctxsynth.niah.needles import NeedlePlan
from ctxsynth.tokenize import Tokenizer

_MAX_TRIES = 12


@dataclass
class Fitted:
    """A rendered example: user text, the needles' char/token spans (plan order) and token counts."""

    user: str
    answer: str
    char_spans: list[list[int]]  # in the user message
    token_spans: list[list[int]]  # in the rendered chat
    haystack_depths: list[float]  # insertion point / haystack chars, or rank among needles
    haystack_chars: int
    tokens: dict[str, Any]


def _chat(user: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


class Fitter:
    """Builds fitted examples for one tokenizer and one haystack source (None: needles only)."""

    def __init__(self, tokenizer: Tokenizer, source: HaystackSource | None) -> None:
        self.tok = tokenizer
        self.source = source
        self.overhead = len(tokenizer.encode(tokenizer.render_chat(_chat("", ""))))

    def compose(self, plan: NeedlePlan, haystack: str | None) -> tuple[str, list[list[int]], list[float]]:
        """The user message, needle char spans in it, and each needle's measured depth."""
        texts = [n.text for n in plan.needles]
        if haystack is None:
            order = sorted(range(len(texts)), key=lambda i: (plan.needles[i].depth, i))
            rank = {i: r for r, i in enumerate(order)}
            context = "\n".join(texts[i] for i in order)
            starts = [sum(len(texts[j]) + 1 for j in order[:rank[i]]) for i in range(len(texts))]
            spans = [[s, s + len(t)] for s, t in zip(starts, texts, strict=True)]
            depths = [rank[i] / max(1, len(texts) - 1) for i in range(len(texts))]
        else:
            context, spans, points = insert(haystack, texts, [n.depth for n in plan.needles])
            depths = [p / max(1, len(haystack)) for p in points]
        head = f"{plan.preamble}\n\n"
        user = f"{head}{context}\n\n{plan.question}"
        return user, [[a + len(head), b + len(head)] for a, b in spans], depths

    def fit(self, plan: NeedlePlan, target: int, rng: random.Random) -> Fitted:
        """Fit `plan` to `target` tokens (ignored without a source) and measure it."""
        if self.source is None:
            user, spans, depths = self.compose(plan, None)
            ids = self.tok.encode(self.tok.render_chat(_chat(user, plan.answer_text)))
            return self._measure(plan, user, spans, depths, ids, 0, {"target": None, "haystack": 0})
        n_source = len(self.source.ids)
        if n_source < target:
            raise ConfigError(f"haystack source has {n_source} tokens, fewer than the target {target}")
        start = rng.randrange(0, n_source - target + 1)
        bare, _, _ = self.compose(plan, "")
        size: int | None = max(0, target - len(self.tok.encode(self.tok.render_chat(_chat(bare, plan.answer_text)))))
        tried: dict[int, int] = {}
        best: tuple[int, Any] | None = None
        while size is not None and len(tried) < _MAX_TRIES:
            haystack = cut(self.source, start, size, self.tok.decode)
            user, spans, depths = self.compose(plan, haystack)
            ids = self.tok.encode(self.tok.render_chat(_chat(user, plan.answer_text)))
            tried[size] = len(ids)
            if len(ids) <= target and (best is None or len(ids) > best[0]):
                best = (len(ids), (user, spans, depths, ids, len(haystack), size))
            if len(ids) == target:
                break
            size = _next_size(size, target, tried)
        if best is None:
            raise ConfigError(f"target {target} tokens is too small for the needles, question and answer")
        user, spans, depths, ids, chars, size = best[1]
        return self._measure(plan, user, spans, depths, ids, chars, {"target": target, "haystack": size})

    def _measure(self, plan: NeedlePlan, user: str, spans: list[list[int]], depths: list[float],
                 ids: list[int], haystack_chars: int, extra: dict[str, Any]) -> Fitted:
        rendered = self.tok.render_chat(_chat(user, plan.answer_text))
        prompt = self.tok.render_chat(_chat(user, plan.answer_text)[:1], add_generation_prompt=True)
        if rendered.startswith(prompt):
            answer_tokens = len(self.tok.encode(rendered[len(prompt):]))
        else:
            answer_tokens = len(ids) - len(self.tok.encode(prompt))
        user_at = rendered.find(user)
        token_spans = [self._locate(n.text, ids, rendered, user_at + s[0]) for n, s in zip(plan.needles, spans, strict=True)]
        in_order = sorted(range(len(spans)), key=lambda i: spans[i][0])
        tokens = {
            "total": len(ids), "prompt": len(ids) - answer_tokens, "answer": answer_tokens,
            "per_document": [token_spans[i][1] - token_spans[i][0] for i in in_order],
            "template_overhead": self.overhead, **extra,
        }
        return Fitted(user, plan.answer_text, spans, token_spans, depths, haystack_chars, tokens)

    def _locate(self, needle: str, ids: list[int], rendered: str, char_at: int) -> list[int]:
        """[start, end) token span of a needle in the rendered chat's ids.

        The needle's own tokens are matched in place (its first token may merge with the space
        before it, so matching starts at its second token); if that fails, the rendered prefix is
        encoded.
        """
        own = self.tok.encode(needle)
        core = own[1:] if len(own) > 1 else own
        pos = -1
        try:
            while True:
                pos = ids.index(core[0], pos + 1)
                if ids[pos:pos + len(core)] == core:
                    start = pos - (len(own) - len(core))
                    return [max(0, start), pos + len(core)]
        except ValueError:
            start = len(self.tok.encode(rendered[:char_at]))
            return [start, start + len(own)]


def _next_size(size: int, target: int, tried: dict[int, int]) -> int | None:
    """Next haystack size to try (None: stop), given the totals measured so far per size.

    Correct by the gap first; when that repeats a size (token merges at the joins make the total
    jump), scan the untried sizes between the best fit and the next size that overflowed.
    """
    nxt = max(0, size + target - tried[size])
    if nxt not in tried:
        return nxt
    fits = [s for s, total in tried.items() if total <= target]
    if not fits:
        below = min(tried) - 1
        return below if below >= 0 else None
    best = max(fits, key=lambda s: (tried[s], -s))
    over = min((s for s, total in tried.items() if total > target and s > best), default=best + 2)
    return next((s for s in range(best + 1, over) if s not in tried), None)
