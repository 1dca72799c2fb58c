"""Fit an evaluation prompt into a model's window, exactly in tokens of the model's tokenizer.

The budget is counted on the rendered chat (the model's template applied to the user message, plus
the generation prompt) so that rendered prompt + max_new_tokens <= max_model_len holds for what the
backend actually sends. Middle truncation (LongBench's choice) keeps the head and the tail of the
prompt, where instructions and questions live; "left" drops the beginning and keeps the end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from ctxsynth.errors import ConfigError
from ctxsynth.tokenize import Tokenizer

log = logging.getLogger(__name__)

Truncation = Literal["middle", "left", "none"]
MAX_ROUNDS = 16


@dataclass(frozen=True)
class FittedPrompt:
    prompt: str  # the user message to send
    prompt_tokens: int  # tokens of the rendered chat prompt
    truncated_tokens: int  # tokens of the user message removed (0 when it fitted)


def rendered_length(tokenizer: Tokenizer, prompt: str) -> int:
    """Tokens of the chat-rendered user message with the generation prompt."""
    text = tokenizer.render_chat([{"role": "user", "content": prompt}], add_generation_prompt=True)
    return len(tokenizer.encode(text))


def fit_prompts(
    prompts: list[str],
    tokenizer: Tokenizer,
    *,
    max_model_len: int | None,
    max_new_tokens: list[int],
    truncation: Truncation = "middle",
) -> list[FittedPrompt]:
    """`fit_prompt` of every prompt, the same results; the rendered lengths are measured in one
    batch (the fast tokenizer encodes it on every core) and only prompts over budget are cut one by
    one. A 1,600-prompt NIAH grid took 13 s prompt by prompt on 2 cores."""
    texts = [tokenizer.render_chat([{"role": "user", "content": p}], add_generation_prompt=True) for p in prompts]
    lengths = [len(ids) for ids in tokenizer.encode_batch(texts)]
    return [FittedPrompt(p, n, 0) if max_model_len is None or truncation == "none" or n + budget <= max_model_len
            else fit_prompt(p, tokenizer, max_model_len=max_model_len, max_new_tokens=budget, truncation=truncation,
                            rendered=n)
            for p, n, budget in zip(prompts, lengths, max_new_tokens, strict=True)]


def _cut(tokenizer: Tokenizer, ids: list[int], keep: int, mode: Truncation) -> str:
    if mode == "left":
        return tokenizer.decode(ids[len(ids) - keep:]) if keep > 0 else ""
    head = (keep + 1) // 2
    tail = keep - head
    return tokenizer.decode(ids[:head]) + (tokenizer.decode(ids[len(ids) - tail:]) if tail > 0 else "")


def fit_prompt(
    prompt: str,
    tokenizer: Tokenizer,
    *,
    max_model_len: int | None,
    max_new_tokens: int,
    truncation: Truncation = "middle",
    rendered: int | None = None,
) -> FittedPrompt:
    """Truncate `prompt` so its rendered chat plus `max_new_tokens` fits `max_model_len`.

    Decoding a token slice and encoding it again can merge tokens at the cut, so the cut is
    re-measured and tightened until the rendered prompt fits; the result is never over budget.
    `rendered`: the prompt's rendered length when the caller has measured it already.
    """
    total = rendered_length(tokenizer, prompt) if rendered is None else rendered
    if max_model_len is None or truncation == "none" or total + max_new_tokens <= max_model_len:
        return FittedPrompt(prompt, total, 0)
    if truncation not in ("middle", "left"):
        raise ConfigError(f"truncation must be 'middle', 'left' or 'none', not {truncation!r}")
    budget = max_model_len - max_new_tokens
    ids = tokenizer.encode(prompt)
    keep = len(ids) - (total - budget)
    for _ in range(MAX_ROUNDS):
        if keep <= 0:
            break
        text = _cut(tokenizer, ids, keep, truncation)
        length = rendered_length(tokenizer, text)
        if length <= budget:
            return FittedPrompt(text, length, len(ids) - keep)
        keep -= length - budget
    raise ConfigError(
        f"cannot fit the prompt into max_model_len={max_model_len} with max_new_tokens={max_new_tokens}: "
        "the chat template alone leaves no room"
    )
