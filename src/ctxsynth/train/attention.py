"""Document-isolating attention for packed training: a varlen kernel registered with transformers.

`ctxsynth_varlen` runs each packed sample as its own causal sequence, given the sample boundaries
(`cu_seq_lens_q`, `max_length_q`) that the collator emits, through ctxsynth.varlen's kernels (on
CUDA PyTorch's varlen flash kernel: no mask, no work between samples; elsewhere SDPA per sample). Without boundaries (generation) it falls back to plain causal SDPA, which is
right for unpadded single sequences only: switch the model to "sdpa" for batched generation.

Sliding-window layers (Gemma-3: 512 tokens, between global layers) get their window from the
`sliding_window` the model passes per layer, with transformers' meaning: a query sees itself and
the `sliding_window - 1` tokens before it (flash `window_size=(W - 1, 0)`). Logit soft-capping
(Gemma-2) has no varlen form here and is refused.

Which built-in implementations isolate packed samples is checked by tests/train: with
position_ids restarting per sample and no attention_mask, transformers builds a block-diagonal
causal mask for "sdpa", "eager" and "flex_attention".
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ctxsynth.varlen import cuda_varlen, per_sequence_sdpa, varlen_available, varlen_kernel

__all__ = ["VARLEN", "register", "resolve", "varlen_attention_forward", "varlen_available"]

log = logging.getLogger(__name__)

VARLEN = "ctxsynth_varlen"
_registered = False


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
    window = kwargs.get("sliding_window")
    window = int(window) if window is not None and window > 0 else None
    if cu is None and window is not None and key.shape[2] > window:
        if query.shape[0] != 1 or query.shape[2] != key.shape[2]:
            raise ValueError("ctxsynth_varlen: a sliding-window layer without sample boundaries (batched or "
                             "cached generation); switch the model to attn_implementation='sdpa' to generate")
        cu = torch.tensor([0, key.shape[2]], dtype=torch.int32)  # one unpacked sequence
    if cu is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if query.shape[0] != 1:
        raise ValueError("ctxsynth_varlen expects one flattened row per batch (use PackedCollator)")
    if kwargs.get("softcap") is not None:
        raise ValueError("ctxsynth_varlen has no attention logit soft-capping: use attn_implementation=eager")
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (T, H, D)
    if q.is_cuda:
        # flash kernels take fp16/bf16 only; with fp32 master weights under autocast, rotary
        # embeddings leave q and k in fp32: run the kernel in the autocast (else bf16) dtype and
        # hand back value's dtype (bf16 under autocast; fp32 in a plain fp32 model, for o_proj)
        out_dtype = v.dtype
        half = q.dtype if q.dtype in (torch.float16, torch.bfloat16) else (
            torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else torch.bfloat16)
        q, k, v = q.to(half), k.to(half), v.to(half)
        out = cuda_varlen(q, k, v, cu, kwargs.get("max_length_q"), scaling, window).to(out_dtype)
    else:
        out = per_sequence_sdpa(q, k, v, cu, scaling, window)
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
            varlen_kernel()  # outside any compiled region
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
