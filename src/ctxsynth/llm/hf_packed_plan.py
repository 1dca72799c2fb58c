"""How packed generation cuts its work into waves (ctxsynth.llm.hf_packed): the rows, the model's cache
shape, and the planner that groups rows of similar length into waves whose KV cache fits the memory
free when each wave starts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ctxsynth.llm.hf_packed_attention import slots_for


@dataclass
class Row:
    """One prompt to continue: its ids and its reply budget."""

    ids: list[int]
    budget: int


@dataclass
class ModelShape:
    layers: int
    kv_heads: int
    head_dim: int
    windows: list[int | None]  # per layer


def model_shape(config: Any) -> ModelShape:
    """Layers, kv heads, head dim and each layer's sliding window, from a transformers config."""
    config = getattr(config, "text_config", None) or config
    if getattr(config, "attn_logit_softcapping", None):
        raise ValueError("packed generation does not support attention logit soft-capping")
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    layers = int(config.num_hidden_layers)
    types = getattr(config, "layer_types", None) or ["full_attention"] * layers
    window = getattr(config, "sliding_window", None)
    windows: list[int | None] = [int(window) if t == "sliding_attention" and window else None for t in types]
    return ModelShape(layers, kv_heads, head_dim, windows)


def packing_blockers(model: Any) -> list[str]:
    """Why packed generation cannot run this model (empty: it can): logit processors its
    generation_config asks for that only `model.generate` applies (they read the prompt too), or
    attention it cannot pack."""
    config = model.generation_config
    asks = [name for name, value in (("repetition_penalty", config.repetition_penalty not in (None, 1.0)),
                                     ("no_repeat_ngram_size", bool(config.no_repeat_ngram_size)),
                                     ("bad_words_ids", bool(config.bad_words_ids)),
                                     ("suppress_tokens", bool(config.suppress_tokens)),
                                     ("begin_suppress_tokens", bool(config.begin_suppress_tokens)),
                                     ("min_new_tokens", bool(config.min_new_tokens)),
                                     ("min_length", bool(config.min_length))) if value]
    try:
        model_shape(model.config)
    except ValueError as exc:
        asks.append(str(exc))
    return asks


def by_length(rows: Sequence[Row]) -> list[int]:
    """Row indices, shortest prompt first: similar lengths share a wave (little padding in its cache)."""
    return sorted(range(len(rows)), key=lambda i: (len(rows[i].ids), i))


class WavePlanner:
    """The wave plan of a PackedGenerator: its model `shape`, cache `dtype`, `device`, `max_rows` and
    `memory_fraction` decide how many rows of which lengths share a wave."""

    shape: ModelShape
    dtype: torch.dtype
    device: torch.device
    max_rows: int
    memory_fraction: float

    def row_bytes(self, cap: int) -> int:
        """Cache bytes of one row of `cap` positions: every layer's slots (a ring for sliding windows)."""
        s = self.shape
        slots = sum(slots_for(cap, w) for w in s.windows)
        return 2 * slots * s.kv_heads * s.head_dim * torch.finfo(self.dtype).bits // 8

    def kv_budget_bytes(self) -> int:
        """Cache bytes the next wave may hold: a share of the memory free now, the device's plus what this
        process's allocator holds unused (the last wave's cache), measured before each wave because
        another process on the GPU (a training run beside an evaluation) grows and shrinks. CPU: 4 GiB."""
        if self.device.type != "cuda":
            return 4 << 30
        free, _ = torch.cuda.mem_get_info(self.device)
        cached = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        return max(1, int((free + cached) * self.memory_fraction))

    def waves(self, rows: Sequence[Row], budget_bytes: int) -> Iterator[list[int]]:
        """Row indices grouped so that rows x row_bytes(longest prompt + budget) fits `budget_bytes`."""
        order = by_length(rows)
        start = 0
        while start < len(order):
            end = self._take(rows, order, start, budget_bytes)
            yield order[start:end]
            start = end

    def _take(self, rows: Sequence[Row], order: list[int], start: int, budget_bytes: int) -> int:
        """The end of the wave that starts at order[start]: as many next rows as max_rows and the budget allow
        (at least one)."""
        end, cap = start, 0
        while end < len(order):
            need = len(rows[order[end]].ids) + rows[order[end]].budget
            if end > start and (end - start >= self.max_rows or
                                self.row_bytes(max(cap, need)) * (end - start + 1) > budget_bytes):
                break
            cap = max(cap, need)
            end += 1
        return end

    def _bytes(self, rows: Sequence[Row], wave: list[int]) -> int:
        """The cache bytes a wave takes: rows x row_bytes(longest prompt + budget)."""
        return len(wave) * self.row_bytes(max(len(rows[i].ids) + rows[i].budget for i in wave))
