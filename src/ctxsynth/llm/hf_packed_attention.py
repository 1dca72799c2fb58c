"""The attention kernel of packed generation (ctxsynth.llm.hf_packed), registered with
transformers' AttentionInterface as `ctxsynth_packed`.

What a forward needs beyond q, k and v (the wave's cache, a prefill chunk's boundaries, each
decoding row's cache slot and valid length) comes from the active `Wave`, which the generator sets
around its forwards (`active`).

The cache: one tensor pair per layer. A full-attention layer keeps every position of a row; a
sliding-window layer of window W keeps a ring of W slots (position p in slot p mod W), since a query
sees only itself and the W - 1 positions before it: Gemma-3's 512-token layers hold 512 slots a row
at 32k instead of 32k. Attention does not depend on the order of its keys, so a ring's valid slots
are always a prefix: the first min(p + 1, W) slots.

Prefill: keys and values go straight into the cache (a ring keeps each prompt's last W), attention
runs within each packed prompt: on CUDA through the flash varlen kernel (kv heads shared by their
query heads without a copy; sliding windows in the kernel), elsewhere per prompt through SDPA
(ctxsynth.varlen), or flex attention for sliding-window layers where the installed torch's varlen
kernel takes no window.

Prefill kernels (`PREFILL_KERNELS`) for the full-attention layers: `varlen` (the default: flash varlen
on CUDA, per-prompt SDPA elsewhere) and `dense`: the chunk's prompts, grouped into runs of similar
length, right-padded into (prompts, heads, longest, dim) tensors and run through SDPA's causal
kernel, cuDNN's on CUDA (any backend elsewhere). Right padding under a causal mask changes no real
token's output (a real query never sees a later position), so only rounding differs. Part 4 of
benchmarks/decode_attention.py measured it on an H100 for Gemma-3's global layer (head dim 256):
cuDNN 628-688 TFLOP/s against flash varlen's ~305, with the same bits in two processes, and the
32k grid evaluated twice with it gave the same 2,000 texts; but end to end it was no faster
(SmolLM2's 1k-8k grid slower, Gemma-3's 32k grid within the spread between processes:
docs/results/eval_throughput.md), so `dense` is opt-in. Sliding-window layers always use `varlen`.

Decoding: one query per row against the first `valid` slots of its cache row. The kernels
(`DECODE_KERNELS`): `flash` (CUDA's default: flash varlen with `seqused_k`, the cache in (rows,
slots, heads, dim) layout, no mask), `sdpa` (SDPA with a length mask over the whole slot; the CPU's),
`bmm` (two batched matrix products and a softmax in float32). On an H100, one layer of an 8k wave of
256 rows took 0.71 ms with `flash`, 1.29 ms with `sdpa` and 1.05 ms with `bmm`
(benchmarks/decode_attention.py, docs/results/eval_throughput.md); the memory-efficient kernel
given per-row key counts (`seqlen_k` without sequence starts) returned wrong values there and is
not offered.

`_attention` is never traced by torch.compile (the packed generator compiles the layers around it
for prefill): it reads the active wave, a Python object, and writes the cache in place.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ctxsynth.errors import ConfigError
from ctxsynth.varlen import kernel_has_window, per_sequence_sdpa

PACKED = "ctxsynth_packed"
DECODE_KERNELS = ("flash", "sdpa", "bmm")
PREFILL_KERNELS = ("varlen", "dense")
DENSE_BACKENDS = {"cuda": [SDPBackend.CUDNN_ATTENTION]}  # the dense prefill's SDPA backends by device (else any)
DENSE_SLACK = 1.25  # a dense group's padded attention work may exceed its prompts' own by this factor
CUDA_DECODE_KERNEL = "flash"  # the default on CUDA (docs/results/eval_throughput.md)
# flash takes a mask on the CPU (10x the math kernel there) and is skipped on CUDA, where it takes none;
# never cuDNN's kernel (see ctxsynth.llm.hf_backend)
_DECODE_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
_ACTIVE: Wave | None = None
_registered = False


@dataclass
class Wave:
    """The cache and the per-forward facts the attention kernel reads."""

    # per layer: (rows, kv heads, slots, head dim) (SDPA's layout), or (rows, slots, kv heads, head dim) when
    # `bshd` (flash varlen's, flattened over rows and slots without a copy)
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    windows: list[int | None]  # per layer: its sliding window (its cache a ring of that many slots), or None
    kernel: str = "sdpa"
    prefill_kernel: str = "varlen"
    decoding: bool = False
    # prefill: the chunk's boundaries, longest prompt, prompt index of every packed token (flex attention),
    # and per window (None = full) which of the chunk's tokens go to which (row, slot): (tokens or None, rows, slots)
    cu: torch.Tensor | None = None
    max_len: int = 0
    doc: torch.Tensor | None = None
    targets: dict[int | None, tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    dense: list[DenseGroup] = field(default_factory=list)  # prefill_kernel dense: the chunk's groups
    # decoding, per window (None = full): the slot each row's new token takes, the slots valid after it
    # (int32), and for the masked kernels the (rows, 1, 1, slots) mask; flash: (cu_q, cu_k) per window
    slot: dict[int | None, torch.Tensor] = field(default_factory=dict)
    valid: dict[int | None, torch.Tensor] = field(default_factory=dict)
    masks: dict[int | None, torch.Tensor] = field(default_factory=dict)
    cu_decode: dict[int | None, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def bshd(self) -> bool:
        """The cache in (rows, slots, kv heads, dim) layout: the flash kernel's."""
        return self.kernel == "flash"

    def slots(self, window: int | None) -> int:
        """Cache slots a row has in a layer of this window."""
        layer = self.windows.index(window)
        return int(self.keys[layer].shape[1 if self.bshd else 2])

    def write(self, layer: int, rows: torch.Tensor, slots: torch.Tensor, key: torch.Tensor,
              value: torch.Tensor) -> None:
        """Keys and values (T, kv heads, dim) into (row, slot) pairs of a layer's cache."""
        if self.bshd:
            self.keys[layer][rows, slots] = key
            self.values[layer][rows, slots] = value
        else:  # advanced indices around a slice: the indexed shape is (T, kv heads, dim)
            self.keys[layer][rows, :, slots] = key
            self.values[layer][rows, :, slots] = value


@dataclass
class DenseGroup:
    """Consecutive prompts of a packed chunk run as one right-padded dense batch: tokens [start, end)
    of the chunk, `rows` prompts padded to `length`, `index` each token's place in the flat
    (rows x length) view, `pad` the padding's places (None when the prompts are of one length and the
    chunk's tokens are already the dense batch)."""

    start: int
    end: int
    rows: int
    length: int
    index: torch.Tensor
    pad: torch.Tensor | None = None


def dense_groups(lengths: list[int], device: torch.device | str, slack: float = DENSE_SLACK) -> list[DenseGroup]:
    """Consecutive prompts grouped while padding them to the group's longest costs at most `slack`
    times their own causal attention work (rows x longest^2 <= slack x the sum of length^2); the
    packed generator sorts a wave by length, so a chunk's groups are few."""
    groups: list[DenseGroup] = []
    start = first = 0  # the group's first prompt and first token
    while start < len(lengths):
        end, longest, own = start + 1, lengths[start], lengths[start] ** 2
        while end < len(lengths):
            top = max(longest, lengths[end])
            if (end + 1 - start) * top * top > slack * (own + lengths[end] ** 2):
                break
            longest, own, end = top, own + lengths[end] ** 2, end + 1
        real = (torch.arange(longest) < torch.tensor(lengths[start:end])[:, None]).flatten()  # the flat view's tokens
        tokens = int(real.sum())
        pad = None if bool(real.all()) else (~real).nonzero().flatten().to(device)
        groups.append(DenseGroup(first, first + tokens, end - start, longest, real.nonzero().flatten().to(device), pad))
        start, first = end, first + tokens
    return groups


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, groups: list[DenseGroup],
                    scale: float | None, backends: list[SDPBackend] | None = None) -> torch.Tensor:
    """Causal attention within each packed prompt, group by group through SDPA on right-padded dense
    tensors; q (T, H, D), k and v (T, kv heads, D) -> (T, H, D). `backends`: SDPA's to allow (all when None).

    Memory passes, not arithmetic, are this wrapper's cost (on an H100 its copies took ~1.3 ms a
    131,072-token chunk, as long as cuDNN's attention at 2k): a group of one length is a view of the
    chunk, a padded one costs one scatter per tensor plus zeroing only the padding (keys and values
    there are masked for every real query, but must not be NaN), and the output is gathered once,
    straight into its place."""
    out = None
    for g in groups:
        def dense(x: torch.Tensor, g: DenseGroup = g) -> torch.Tensor:
            x = x[g.start:g.end]
            if g.pad is not None:
                flat = x.new_empty(g.rows * g.length, x.shape[1], x.shape[2])
                flat.index_copy_(0, g.index, x)
                x = flat.index_fill_(0, g.pad, 0)
            return x.reshape(g.rows, g.length, x.shape[1], x.shape[2]).transpose(1, 2)

        with sdpa_kernel(backends) if backends else nullcontext():
            o = F.scaled_dot_product_attention(dense(q), dense(k), dense(v), is_causal=True, scale=scale,
                                               enable_gqa=q.shape[1] != k.shape[1])
        o = o.transpose(1, 2).reshape(g.rows * g.length, q.shape[1], q.shape[2])  # a view where SDPA kept q's layout
        if g.pad is None and len(groups) == 1 and g.end - g.start == q.shape[0]:
            return o  # the whole chunk, one length: no copy at all
        out = torch.empty_like(q) if out is None else out
        if g.pad is None:
            out[g.start:g.end] = o
        else:
            torch.index_select(o, 0, g.index, out=out[g.start:g.end])
    assert out is not None, "no prompts"
    return out


def slots_for(cap: int, window: int | None) -> int:
    """Cache slots a row of `cap` positions needs in a layer of this window."""
    return cap if window is None else min(cap, window)


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


@torch.compiler.disable
def _attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: Any, dropout: float = 0.0, scaling: float | None = None,
               sliding_window: int | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention interface: query (B, H, T, D) -> output (B, T, H, D)."""
    wave = _ACTIVE
    if wave is None:
        raise RuntimeError("ctxsynth_packed attention runs only inside PackedGenerator")
    layer = int(module.layer_idx)  # type: ignore[arg-type]
    window = wave.windows[layer]
    if wave.decoding:
        return decode_attention(wave, layer, query, key, value, scaling, window), None
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (T, H, D)
    tokens, rows, slots = wave.targets[window]
    if tokens is None:
        wave.write(layer, rows, slots, k, v)
    else:
        wave.write(layer, rows, slots, k[tokens], v[tokens])
    return _prefill_attention(wave, q, k, v, scaling, window).unsqueeze(0), None


def decode_attention(wave: Wave, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     scaling: float | None, window: int | None) -> torch.Tensor:
    """One decoding step of one layer: each row's new key and value into its slot, then its query over
    its valid slots with the wave's kernel. query (rows, heads, 1, dim) -> output (rows, 1, heads, dim)."""
    rows, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    index = torch.arange(rows, device=query.device)
    wave.write(layer, index, wave.slot[window], key[:, :, 0, :], value[:, :, 0, :])
    k, v = wave.keys[layer], wave.values[layer]
    if wave.kernel == "flash":  # rows x slots flattened, each row's first `valid` keys
        cu_q, cu_k = wave.cu_decode[window]
        slots = k.shape[1]
        out = torch.ops.aten._flash_attention_forward(
            query[:, :, 0, :], k.view(rows * slots, kv_heads, dim), v.view(rows * slots, kv_heads, dim), cu_q, cu_k,
            1, slots, 0.0, False, False, scale=scaling, seqused_k=wave.valid[window])[0]
        return out.reshape(rows, 1, heads, dim)
    # a row's query heads of one kv head become that head's queries: no copy of the cache per head
    q = query.reshape(rows, kv_heads, heads // kv_heads, dim)
    if wave.kernel == "bmm":
        scale = scaling if scaling is not None else dim ** -0.5
        scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale
        scores = scores.masked_fill(~wave.masks[window], float("-inf"))
        out = torch.matmul(scores.softmax(-1).to(v.dtype), v)
    else:
        with sdpa_kernel(_DECODE_BACKENDS):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=wave.masks[window], scale=scaling)
    return out.reshape(rows, 1, heads, dim)


def _prefill_attention(wave: Wave, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None,
                       window: int | None) -> torch.Tensor:
    assert wave.cu is not None
    dtype = q.dtype
    if q.is_cuda and dtype not in (torch.float16, torch.bfloat16):  # flash and cuDNN kernels: half precision only
        q, k, v = q.to(torch.bfloat16), k.to(torch.bfloat16), v.to(torch.bfloat16)
    if window is None and wave.prefill_kernel == "dense":
        backends = DENSE_BACKENDS.get(q.device.type)
        try:
            return dense_attention(q, k, v, wave.dense, scale, backends).to(dtype)
        except RuntimeError as exc:  # no such kernel for this shape, card or torch: a setting to change
            if not backends or ("backend" not in str(exc).lower() and "kernel" not in str(exc).lower()):
                raise
            raise ConfigError(f"prefill_kernel dense: SDPA's {', '.join(b.name for b in backends)} refused this model's "
                              f"shape on this machine ({str(exc).splitlines()[0]}); set prefill_kernel: varlen") from exc
    if q.is_cuda:
        if window is None or kernel_has_window():
            return flash_varlen(q, k, v, wave.cu, wave.max_len, scale, window).to(dtype)
        return _flex(q, k, v, wave, scale, window).to(dtype)
    return per_sequence_sdpa(q, k, v, wave.cu, scale, window)


def flash_varlen(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int,
                 scale: float | None, window: int | None) -> torch.Tensor:
    """Causal flash attention within each packed prompt, inference only: the kernel takes fewer kv heads
    than query heads as they are (ctxsynth.varlen.cuda_varlen, which training's autograd needs, copies
    them where the installed varlen_attn has no enable_gqa)."""
    left = -1 if window is None else window - 1
    return torch.ops.aten._flash_attention_forward(q, k, v, cu, cu, max_len, max_len, 0.0, True, False, scale=scale,
                                                   window_size_left=left, window_size_right=0)[0]


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
