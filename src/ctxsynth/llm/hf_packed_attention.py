"""The attention kernel of packed generation (ctxsynth.llm.hf_packed), registered with
transformers' AttentionInterface as `ctxsynth_packed`.

What a forward needs beyond q, k and v (the wave's cache, a prefill chunk's boundaries, each
decoding row's length) comes from the active `Wave`, which the generator sets around its forwards
(`active`). Prefill: keys and values go straight into the cache, attention runs within each
packed prompt through ctxsynth.varlen (flash varlen on CUDA, per-prompt SDPA elsewhere), or flex
attention for sliding-window layers where the installed torch's varlen kernel takes no window.
Decoding: one query per row against the whole cache row through SDPA with a length mask
(sliding-window layers: within their window).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ctxsynth.varlen import cuda_varlen, kernel_has_window, per_sequence_sdpa

PACKED = "ctxsynth_packed"
# flash takes a mask on the CPU (10x the math kernel there) and is skipped on CUDA, where it takes none;
# never cuDNN's kernel (see ctxsynth.llm.hf_backend)
_DECODE_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
_ACTIVE: Wave | None = None
_registered = False


@dataclass
class Wave:
    """The cache and the per-forward facts the attention kernel reads."""

    keys: list[torch.Tensor]  # per layer (rows, kv heads, capacity, head dim): SDPA's layout, no copy per step
    values: list[torch.Tensor]
    decoding: bool = False
    # prefill: the chunk's boundaries, longest prompt, each token's row and position in the cache
    cu: torch.Tensor | None = None
    max_len: int = 0
    rows: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    doc: torch.Tensor | None = None  # prompt index of every packed token (flex attention)
    # decoding: the position each row's new token takes
    lengths: torch.Tensor | None = None
    masks: dict[int | None, torch.Tensor] = field(default_factory=dict)  # window -> (rows, 1, 1, cap)


@contextmanager
def active(wave: Wave) -> Iterator[Wave]:
    """The wave the kernel reads during the forwards inside the block."""
    global _ACTIVE
    _ACTIVE = wave
    try:
        yield wave
    finally:
        _ACTIVE = None


def register() -> str:
    """Register the packed attention with transformers (idempotent); returns its name."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(PACKED, _attention)
        _registered = True
    return PACKED


def _attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: Any, dropout: float = 0.0, scaling: float | None = None,
               sliding_window: int | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention interface: query (B, H, T, D) -> output (B, T, H, D)."""
    wave = _ACTIVE
    if wave is None:
        raise RuntimeError("ctxsynth_packed attention runs only inside PackedGenerator")
    layer = int(module.layer_idx)  # type: ignore[arg-type]
    if wave.decoding:
        return _decode_attention(wave, layer, query, key, value, scaling, sliding_window), None
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (T, H, D)
    assert wave.rows is not None and wave.positions is not None and wave.cu is not None
    wave.keys[layer][wave.rows, :, wave.positions] = k  # (T, Hkv, D) into (B, Hkv, cap, D)
    wave.values[layer][wave.rows, :, wave.positions] = v
    return _prefill_attention(wave, q, k, v, scaling, sliding_window).unsqueeze(0), None


def _decode_attention(wave: Wave, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      scaling: float | None, window: int | None) -> torch.Tensor:
    rows, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    index = torch.arange(rows, device=query.device)
    assert wave.lengths is not None
    wave.keys[layer][index, :, wave.lengths] = key[:, :, 0, :]
    wave.values[layer][index, :, wave.lengths] = value[:, :, 0, :]
    # a row's query heads of one kv head become that head's queries: no copy of the cache per head
    q = query.reshape(rows, kv_heads, heads // kv_heads, dim)
    k, v = wave.keys[layer], wave.values[layer]
    with sdpa_kernel(_DECODE_BACKENDS):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=wave.masks[window], scale=scaling)
    return out.reshape(rows, 1, heads, dim)


def _prefill_attention(wave: Wave, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None,
                       window: int | None) -> torch.Tensor:
    assert wave.cu is not None
    if q.is_cuda:
        dtype = q.dtype
        if dtype not in (torch.float16, torch.bfloat16):  # flash kernels: half precision only
            q, k, v = q.to(torch.bfloat16), k.to(torch.bfloat16), v.to(torch.bfloat16)
        if window is None or kernel_has_window():
            return cuda_varlen(q, k, v, wave.cu, wave.max_len, scale, window).to(dtype)
        return _flex(q, k, v, wave, scale, window).to(dtype)
    return per_sequence_sdpa(q, k, v, wave.cu, scale, window)


_FLEX: Any = None


def _flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, wave: Wave, scale: float | None,
          window: int) -> torch.Tensor:
    """Sliding-window causal attention within each packed prompt, by flex attention (compiled)."""
    global _FLEX
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if _FLEX is None:
        _FLEX = torch.compile(flex_attention, dynamic=True)
    doc = wave.doc
    assert doc is not None

    def mask(b: Any, h: Any, qi: Any, ki: Any) -> Any:
        return (doc[qi] == doc[ki]) & (qi >= ki) & (qi - ki < window)

    n = q.shape[0]
    block = create_block_mask(mask, None, None, n, n, device=q.device)
    out = _FLEX(*(t.transpose(0, 1).unsqueeze(0) for t in (q, k, v)), block_mask=block, scale=scale,
                enable_gqa=q.shape[1] != k.shape[1])
    return out[0].transpose(0, 1)
