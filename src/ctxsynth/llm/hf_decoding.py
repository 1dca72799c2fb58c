"""The transformers backend's decoding pieces, per row of a batch: seeded sampling that does not depend
on the batch's other rows (RowGumbelSampler), per-row token budgets (RowTokenBudget) and an n-gram
block over the generated tokens only (GeneratedNoRepeatNGram)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

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

    Row i at step t gets noise from a generator seeded with step_seed(seeds[i], t), so its tokens
    depend only on its own prompt, parameters and seed, never on the other rows of the batch.
    """

    def __init__(self, seeds: Sequence[int], temperatures: Sequence[float], top_ps: Sequence[float],
                 prompt_width: int) -> None:
        self.seeds = list(seeds)
        self.temperatures = torch.tensor(temperatures, dtype=torch.float32)
        self.top_ps = torch.tensor(top_ps, dtype=torch.float32)
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_width
        rows = [r for r, t in enumerate(self.temperatures.tolist()) if t > 0]
        if not rows:
            return scores
        out = scores.float().clone()
        index = torch.tensor(rows, device=out.device)
        picked = out.index_select(0, index) / self.temperatures[rows].to(out.device)[:, None]
        picked = _nucleus(picked, self.top_ps[rows].to(out.device))
        seeds = [step_seed(self.seeds[r], step) for r in rows]
        uniform = torch.stack([_uniform(out.shape[1], seed, out.device) for seed in seeds])
        uniform = uniform.clamp_(min=1e-20, max=1.0 - 2.0**-24)
        out[index] = picked - torch.log(-torch.log(uniform))
        return out


def _uniform(size: int, seed: int, device: torch.device) -> torch.Tensor:
    """`size` uniform floats in [0, 1) from a fresh generator on `device` (no host-to-device copy)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return torch.rand(size, generator=generator, device=device)


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
