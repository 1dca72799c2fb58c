"""Pad a gold passage with filler text to an exact prompt length in tokens, at a chosen depth.

Filler comes in pieces (essay sentences or Wikipedia extracts). Pieces are added from a random
start until the budget is met, the gold passage is placed at the piece boundary nearest the
requested depth, pieces are dropped from the far end while the prompt is too long, and the last gap
is closed with a token slice of one more piece, so the prompt ends at the target length (or a
token or two short when the tokenizer merges at the cut). Where things landed is returned.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ctxsynth.errors import ConfigError
from ctxsynth.tokenize import Tokenizer

Render = Callable[[str], str]  # context -> full prompt


@dataclass(frozen=True)
class Padded:
    prompt: str
    prompt_tokens: int
    gold_depth: float  # tokens of the prompt before the gold passage / prompt tokens
    gold_char_start: int  # where the gold passage starts in the prompt


def _join(before: Sequence[str], gold: str, after: Sequence[str], sep: str) -> str:
    return "\n\n".join(part for part in (sep.join(before), gold, sep.join(after)) if part)


def _draw(pieces: Sequence[str], tokenizer: Tokenizer, budget: int, rng: random.Random) -> tuple[list[str], list[int]]:
    chosen: list[str] = []
    counts: list[int] = []
    index, total = rng.randrange(len(pieces)), 0
    while total < budget and len(chosen) < len(pieces):
        batch = [pieces[(index + k) % len(pieces)] for k in range(16)]
        for piece, ids in zip(batch, tokenizer.encode_batch(batch), strict=True):
            if total >= budget:
                break
            chosen.append(piece)
            counts.append(len(ids) + 1)  # + the separator
            total += len(ids) + 1
        index += 16
    return chosen, counts


def pad_to_length(
    gold: str,
    render: Render,
    pieces: Sequence[str],
    tokenizer: Tokenizer,
    *,
    length: int,
    depth: float,
    rng: random.Random,
    sep: str = " ",
) -> Padded:
    """The prompt render(context) of at most `length` tokens with `gold` at about `depth` (0..1)."""
    budget = length - len(tokenizer.encode(render(gold)))
    if budget < 0:
        raise ConfigError(f"the gold passage alone exceeds {length} tokens")
    chosen, counts = _draw(pieces, tokenizer, budget, rng)
    total, split, running = sum(counts), 0, 0
    while split < len(chosen) and running + counts[split] / 2 < depth * total:
        running += counts[split]
        split += 1
    before, after = chosen[:split], chosen[split:]
    prompt = render(_join(before, gold, after, sep))
    n = len(tokenizer.encode(prompt))
    while n > length and (before or after):
        (after.pop() if after else before.pop(0))
        prompt = render(_join(before, gold, after, sep))
        n = len(tokenizer.encode(prompt))
    prompt, n = _close_gap(prompt, n, before, gold, after, sep, render, tokenizer, length, rng, pieces)
    start = prompt.index(gold)
    return Padded(prompt, n, len(tokenizer.encode(prompt[:start])) / max(n, 1), start)


def _close_gap(prompt: str, n: int, before: list[str], gold: str, after: list[str], sep: str, render: Render,
               tokenizer: Tokenizer, length: int, rng: random.Random, pieces: Sequence[str]) -> tuple[str, int]:
    """Fill the last few tokens with a slice of one more piece, on the side away from the gold."""
    start, text, k = rng.randrange(len(pieces)), "", 0
    while len(tokenizer.encode(text)) < length - n and k < len(pieces):
        text = sep.join(x for x in (text, pieces[(start + k) % len(pieces)]) if x)
        k += 1
    extra_ids = tokenizer.encode(text)
    take = min(length - n, len(extra_ids))
    while take > 0:
        extra = tokenizer.decode(extra_ids[:take])
        trial_before, trial_after = (before, [*after, extra]) if after or not before else ([extra, *before], after)
        trial = render(_join(trial_before, gold, trial_after, sep))
        m = len(tokenizer.encode(trial))
        if m <= length:
            return trial, m
        take -= m - length
    return prompt, n
