"""The transformers backend's decoding pieces, per row of a batch: seeded sampling that does not depend
on the batch's other rows (RowGumbelSampler), per-row token budgets (RowTokenBudget), an n-gram
block over the generated tokens only (GeneratedNoRepeatNGram), and the chain of them both decoding
paths apply (row_processors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria
from transformers.generation.logits_process import (
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
)

from ctxsynth.llm.base import ChatRequest, request_key

_MASK63 = (1 << 63) - 1


def step_seed(seed: int, step: int) -> int:
    """A well-mixed 63-bit generator seed for one (request seed, decoding step) pair (splitmix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + step + 1) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK63


def request_seed(request: ChatRequest) -> int:
    """The request's sampling seed; without one, a seed derived from its content (still per request)."""
    if request.params.seed is not None:
        return int(request.params.seed)
    return int(request_key({}, request)[:15], 16)


class RowGumbelSampler(LogitsProcessor):
    """Turns greedy decoding into per-row seeded sampling: temperature, top-p, then Gumbel noise.

    Row i at step t gets the noise of token j from a counter-based hash of (step_seed(seeds[i], t), j)
    (`hashed_uniform`), so its tokens depend only on its own prompt, parameters and seed, never on
    the other rows of the batch. The noise of a whole batch is a few integer tensor operations per
    step (no per-row generator), and bit-identical on every device.
    """

    def __init__(self, seeds: Sequence[int], temperatures: Sequence[float], top_ps: Sequence[float],
                 prompt_width: int) -> None:
        self.rows = [r for r, t in enumerate(temperatures) if t > 0]
        # step_seed(seed, step) = mix(seed * GOLDEN + step + 1): the per-row part, once per batch
        self._bases = torch.tensor([_signed((int(seeds[r]) * _GOLDEN + 1) & _MASK64) for r in self.rows],
                                   dtype=torch.int64)
        self._temperatures = torch.tensor([float(temperatures[r]) for r in self.rows], dtype=torch.float32)
        self._top_ps = torch.tensor([float(top_ps[r]) for r in self.rows], dtype=torch.float32)
        self._on: dict[torch.device, tuple[torch.Tensor, ...]] = {}
        self.prompt_width = prompt_width

    def _tensors(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in self._on:
            self._on[device] = (torch.tensor(self.rows, device=device), self._bases.to(device),
                                self._temperatures.to(device), self._top_ps.to(device))
        return self._on[device]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.rows:
            return scores
        step = input_ids.shape[1] - self.prompt_width
        out = scores.float().clone()
        index, bases, temperatures, top_ps = self._tensors(out.device)
        picked = _nucleus(out.index_select(0, index) / temperatures[:, None], top_ps)
        keys = _mix64(bases + step) & _MASK63  # step_seed(seed, step) of every sampled row
        # noise only where a token can still be drawn (outside the nucleus it stays -inf): the same
        # values as over the whole vocabulary, at a fraction of the cost when top_p < 1
        rows, tokens = torch.isfinite(picked).nonzero(as_tuple=True)
        noise = -torch.log(-torch.log(hashed_uniform_at(keys[rows], tokens)))
        picked[rows, tokens] += noise.float()
        out[index] = picked
        return out


_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 value torch stores for it."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _srl(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 patterns (torch's >> is arithmetic for signed integers)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (multiplication wraps modulo 2**64), as step_seed."""
    z = (z ^ _srl(z, 30)) * _signed(0xBF58476D1CE4E5B9)
    z = (z ^ _srl(z, 27)) * _signed(0x94D049BB133111EB)
    return z ^ _srl(z, 31)


def hashed_uniform_at(keys: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Uniform floats in (0, 1) for (key, token) pairs (broadcast): the top 24 bits of
    mix64(key * GOLDEN + token + 1), centred in their 2**-24 bin (float64, so never 0 or 1)."""
    bits = _srl(_mix64(keys * _signed(_GOLDEN) + (tokens + 1)), 40)
    return (bits.double() + 0.5) * 2.0**-24


def hashed_uniform(keys: torch.Tensor, size: int) -> torch.Tensor:
    """`hashed_uniform_at` for every token 0..size-1 of every key: one row of `size` per key."""
    return hashed_uniform_at(keys[:, None], torch.arange(size, device=keys.device, dtype=torch.int64))



def _nucleus(logits: torch.Tensor, top_ps: torch.Tensor, shortlist: int = 1024) -> torch.Tensor:
    """Keep, per row, the smallest set of top tokens whose probability reaches top_p (always >= 1).

    The nucleus is searched among the `shortlist` best tokens first (a top-k is far cheaper than a
    full sort); only when those do not reach top_p is the whole vocabulary sorted. Same result.
    """
    rows = (top_ps < 1.0).nonzero().flatten()
    if rows.numel() == 0:
        return logits
    sub, ps = logits[rows], top_ps[rows]
    k = min(shortlist, sub.shape[-1])
    values, order = sub.topk(k, dim=-1)
    probs = torch.exp(values - torch.logsumexp(sub, dim=-1, keepdim=True))
    cumulative = torch.cumsum(probs, dim=-1)
    if k < sub.shape[-1] and not bool((cumulative[:, -1] >= ps).all()):
        return _nucleus(logits, top_ps, shortlist=sub.shape[-1])
    drop_ranked = (cumulative - probs) >= ps[:, None]  # mass strictly above each token reaches top_p
    drop_ranked[:, 0] = False
    drop = torch.ones_like(sub, dtype=torch.bool).scatter(-1, order, drop_ranked)
    out = logits.clone()
    out[rows] = sub.masked_fill(drop, float("-inf"))
    return out


class RowTokenBudget(StoppingCriteria):
    """Stops each row after its own max_tokens (the batch runs until every row is done)."""

    def __init__(self, budgets: Sequence[int], prompt_width: int) -> None:
        self.budgets = torch.tensor(budgets, dtype=torch.long)
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_width
        return (self.budgets <= generated).to(input_ids.device)


class GeneratedNoRepeatNGram(LogitsProcessor):
    """transformers' NoRepeatNGramLogitsProcessor over the generated tokens only (left-padded
    batches: every row's reply starts at `prompt_width`)."""

    def __init__(self, ngram_size: int, prompt_width: int) -> None:
        self.inner = NoRepeatNGramLogitsProcessor(ngram_size)
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.inner(input_ids[:, self.prompt_width:], scores)


def row_processors(seeds: Sequence[int], temperatures: Sequence[float], top_ps: Sequence[float], prompt_width: int,
                   repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> list[LogitsProcessor]:
    """The logit processors of a batch, in order: the loop curbs (on the reply's tokens, which start at
    `prompt_width`; off at 1.0 and 0), then the per-row sampler (greedy rows left as they are)."""
    chain: list[LogitsProcessor] = []
    if repetition_penalty != 1.0:
        chain.append(RepetitionPenaltyLogitsProcessor(repetition_penalty, prompt_ignore_length=prompt_width or None))
    if no_repeat_ngram_size > 0:
        chain.append(GeneratedNoRepeatNGram(no_repeat_ngram_size, prompt_width))
    chain.append(RowGumbelSampler(seeds, temperatures, top_ps, prompt_width))
    return chain
