"""Document-isolating attention for packed training: a varlen kernel registered with transformers.

`ctxsynth_varlen` runs each packed sample as its own causal sequence, given the sample boundaries
(`cu_seq_lens_q`, `max_length_q`) that the collator emits. On CUDA it calls PyTorch's varlen flash
kernel (`torch.nn.attention.varlen.varlen_attn`): no mask is ever built and no work is spent on the
blocks between samples. Elsewhere (CPU tests) it runs the samples one by one through SDPA, which
has the same meaning. Without boundaries (generation) it falls back to plain causal SDPA, which is
right for unpadded single sequences only: switch the model to "sdpa" for batched generation.

Which built-in implementations isolate packed samples is checked by tests/train: with
position_ids restarting per sample and no attention_mask, transformers builds a block-diagonal
causal mask for "sdpa", "eager" and "flex_attention".
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

VARLEN = "ctxsynth_varlen"
_registered = False


def varlen_available() -> bool:
    """True when torch ships the varlen flash kernel and a CUDA device is present."""
    if not torch.cuda.is_available():
        return False
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True


def _per_document_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, scale: float | None) -> torch.Tensor:
    """q/k/v (T, H, D); each [cu[i], cu[i+1]) span attends causally to itself only."""
    out = torch.empty_like(q)
    groups = q.shape[1] // k.shape[1]
    bounds = cu.tolist()
    for start, end in zip(bounds[:-1], bounds[1:], strict=False):
        qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))
        if groups > 1:
            ks, vs = ks.repeat_interleave(groups, 0), vs.repeat_interleave(groups, 0)
        out[start:end] = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale).transpose(0, 1)
    return out


def _cuda_varlen(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int | None, scale: float | None
) -> torch.Tensor:
    """Causal varlen flash attention; adapts to the keyword names of the installed torch.

    Traceable by torch.compile: the kernel is a custom op, the signature is read once outside the
    traced code, and max_len stays symbolic (no int() of it, which would recompile per pack)."""
    varlen_attn, params = _varlen_kernel()
    cu = cu.to(device=q.device, dtype=torch.int32)
    if max_len is None:
        max_len = int((cu[1:] - cu[:-1]).max())
    kw: dict[str, Any] = {"scale": scale}
    if "window_size" in params:
        kw["window_size"] = (-1, 0)
    else:
        kw["is_causal"] = True
    if q.shape[1] != k.shape[1]:
        if "enable_gqa" in params:
            kw["enable_gqa"] = True
        else:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    return varlen_attn(q, k, v, cu, cu, max_len, max_len, **kw)


_VARLEN: tuple[Any, frozenset[str]] | None = None


def _varlen_kernel() -> tuple[Any, frozenset[str]]:
    """torch's varlen_attn and its keyword names, looked up once (register() does it eagerly)."""
    global _VARLEN
    if _VARLEN is None:
        from torch.nn.attention.varlen import varlen_attn

        _VARLEN = (varlen_attn, frozenset(inspect.signature(varlen_attn).parameters))
    return _VARLEN


def varlen_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention interface: query (B, H, T, D) -> output (B, T, H, D)."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if query.shape[0] != 1:
        raise ValueError("ctxsynth_varlen expects one flattened row per batch (use PackedCollator)")
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (T, H, D)
    if q.is_cuda:
        # flash kernels take fp16/bf16 only; with fp32 master weights under autocast, rotary
        # embeddings leave q and k in fp32: run the kernel in the autocast (else bf16) dtype and
        # hand back value's dtype (bf16 under autocast; fp32 in a plain fp32 model, for o_proj)
        out_dtype = v.dtype
        half = q.dtype if q.dtype in (torch.float16, torch.bfloat16) else (
            torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else torch.bfloat16)
        q, k, v = q.to(half), k.to(half), v.to(half)
        out = _cuda_varlen(q, k, v, cu, kwargs.get("max_length_q"), scaling).to(out_dtype)
    else:
        out = _per_document_sdpa(q, k, v, cu, scaling)
    return out.unsqueeze(0), None


def _no_mask(*args: Any, **kwargs: Any) -> None:
    return None


def register() -> str:
    """Register `ctxsynth_varlen` with transformers (idempotent); returns its name."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface

        AttentionInterface.register(VARLEN, varlen_attention_forward)
        AttentionMaskInterface.register(VARLEN, _no_mask)
        if varlen_available():
            _varlen_kernel()  # outside any compiled region
        _registered = True
    return VARLEN


def resolve(name: str) -> str:
    """Map the config value to a transformers attn_implementation; "auto" prefers the varlen kernel."""
    if name == "auto":
        name = VARLEN if varlen_available() else "sdpa"
    if name == VARLEN:
        register()
    log.info("attention implementation: %s", name)
    return name
