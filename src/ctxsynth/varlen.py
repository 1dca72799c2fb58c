"""Causal attention within each of several sequences packed into one row, the kernels shared by
packed training (ctxsynth.train.attention) and packed generation (ctxsynth.llm.hf_packed_attention).

Tensors are (T, H, D), the sequences the spans [cu[i], cu[i+1]). A sliding window W has
transformers' meaning: a query sees itself and the W - 1 tokens before it (flash `window_size=(W -
1, 0)`). On CUDA, PyTorch's varlen flash kernel (`torch.nn.attention.varlen.varlen_attn`): no mask,
no work between sequences. Elsewhere (CPU tests), the sequences one by one through SDPA, which
means the same.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

_VARLEN: tuple[Any, frozenset[str]] | None = None


def varlen_available() -> bool:
    """True when torch ships the varlen flash kernel and a CUDA device is present."""
    if not torch.cuda.is_available():
        return False
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True


def varlen_kernel() -> tuple[Any, frozenset[str]]:
    """torch's varlen_attn and its keyword names, looked up once (call it outside compiled code)."""
    global _VARLEN
    if _VARLEN is None:
        from torch.nn.attention.varlen import varlen_attn

        _VARLEN = (varlen_attn, frozenset(inspect.signature(varlen_attn).parameters))
    return _VARLEN


def kernel_has_window() -> bool:
    """Whether the installed torch's varlen_attn takes a sliding window (torch >= 2.10)."""
    return "window_size" in varlen_kernel()[1]


def cuda_varlen(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int | None,
                scale: float | None, window: int | None = None) -> torch.Tensor:
    """Causal varlen flash attention (half precision in, same out); adapts to the keyword names of
    the installed torch. Traceable by torch.compile: the kernel is a custom op, the signature is read
    once outside the traced code, and max_len stays symbolic (no int() of it, which would recompile
    per pack)."""
    varlen_attn, params = varlen_kernel()
    cu = cu.to(device=q.device, dtype=torch.int32)
    if max_len is None:
        max_len = int((cu[1:] - cu[:-1]).max())
    kw: dict[str, Any] = {"scale": scale}
    if "window_size" in params:
        kw["window_size"] = (-1 if window is None else window - 1, 0)
    elif window is not None:
        raise RuntimeError("this torch's varlen_attn has no window_size: sliding-window layers need torch >= 2.10 "
                           "or attn_implementation=sdpa")
    else:
        kw["is_causal"] = True
    if q.shape[1] != k.shape[1]:
        if "enable_gqa" in params:
            kw["enable_gqa"] = True
        else:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    return varlen_attn(q, k, v, cu, cu, max_len, max_len, **kw)


def per_sequence_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, scale: float | None,
                      window: int | None = None) -> torch.Tensor:
    """The same through SDPA, sequence by sequence (any device)."""
    out = torch.empty_like(q)
    groups = q.shape[1] // k.shape[1]
    bounds = cu.tolist()
    for start, end in zip(bounds[:-1], bounds[1:], strict=False):
        qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))
        if groups > 1:
            ks, vs = ks.repeat_interleave(groups, 0), vs.repeat_interleave(groups, 0)
        n = end - start
        if window is not None and n > window:
            i = torch.arange(n, device=q.device)
            band = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)
            attn = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=band, scale=scale)
        else:
            attn = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale)
        out[start:end] = attn.transpose(0, 1)
    return out
