"""Where packed generation spends its time, on random-weight models of the real shapes (no weights to carry).

Five parts, one GPU call:
1. **Decoding attention kernels** (ctxsynth.llm.hf_packed_attention.DECODE_KERNELS) on one layer's
   cache: SmolLM2-135M's (9 query heads on 3 kv heads of 64) and Gemma-3-270M's (4 on 1 of 256), at
   the grid's lengths. Each kernel's output against a float64 reference (relative error) and its
   median time with the bytes it must read (keys and values of every valid slot) over that time.
2. **Waves end to end** (ctxsynth.llm.hf_packed.PackedGenerator on the model shape, every row to its
   budget): prefill seconds and tokens/s, decoding milliseconds per step, per kernel.
3. **Prefill chunk size**: tokens/s of packed prefill at several `prefill_tokens`, and the costliest
   device kernels of one chunk (torch.profiler).
4. **Prefill attention kernels** on one layer and one 131,072-token chunk of equal-length prompts
   (Gemma-3's global layer, 4 heads on 1 of 256, at 2k, 8k and 32k; SmolLM2's at 8k): the packed
   path's flash varlen kernel against SDPA over the same prompts as a dense causal batch with each
   backend (flash, cuDNN, memory-efficient; kv heads expanded inside the clock where a backend takes
   no GQA), and `ctxsynth_dense_cudnn`, the packed path's `prefill_kernel: dense` itself (right-padded
   groups through cuDNN, the copies in the clock): milliseconds, TFLOP/s of causal attention, the
   difference from flash varlen, and a digest of the output's bits with whether a second call gave
   the same bits. Run it twice (two processes) and compare the digests: a kernel whose bits change
   between processes changes texts between runs. The `_grid_lengths` rows run the same chunk as the
   grid's prompts are: lengths spread over 46 tokens below the cell's (the 32k pilot's Gemma-3 grid:
   e.g. 32,574-32,619 at 32k), so `prefill_kernel: dense` pads and gathers; their TFLOP/s count
   each prompt's own causal work, not the padding.
5. **The dense path's own cost**: `prefill_kernel: dense` with SDPA replaced by a copy of its query
   (the grouping's copies in and out, and the stand-in's one write), at one length and at the grid's
   spread, beside the stand-in's copy alone.

  python benchmarks/decode_attention.py --device cuda --out decode_attention.json
  python benchmarks/decode_attention.py --device cpu --smoke        # tiny shapes, the CPU kernels

Last line: `best_decode_kernel: <name> decode_ms_per_step: <ms> prefill_tokens_per_s: <n>` (the
8k SmolLM2 wave).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def smollm2_shape(tiny: bool) -> Any:
    from transformers import LlamaConfig

    if tiny:
        return LlamaConfig(vocab_size=512, hidden_size=48, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=3, num_key_value_heads=1, max_position_embeddings=2048)
    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                       rope_theta=100000.0, tie_word_embeddings=True)


def gemma3_shape(tiny: bool) -> Any:
    from transformers import Gemma3TextConfig

    layers = 6 if tiny else 18
    types = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(layers)]
    if tiny:
        return Gemma3TextConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                                num_attention_heads=4, num_key_value_heads=1, head_dim=16, sliding_window=16,
                                layer_types=types, max_position_embeddings=2048)
    return Gemma3TextConfig(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=layers,
                            num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
                            layer_types=types, max_position_embeddings=32768, query_pre_attn_scalar=256,
                            rope_theta=1000000.0)


def timed(fn: Any, device: str, repeats: int) -> float:
    """Median seconds of fn() after two warm-up calls (device events on CUDA)."""
    import torch

    fn()
    fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def kernel_table(device: str, kernels: list[str], tiny: bool) -> list[dict[str, Any]]:
    """Part 1: one layer's decoding attention per kernel and shape."""
    import torch

    from ctxsynth.llm.hf_packed_attention import Wave, decode_attention

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    # (name, rows, heads, kv heads, dim, slots): a wave's cache of one layer
    shapes = [("smollm2 1k", 256, 9, 3, 64, 1152), ("smollm2 8k", 256, 9, 3, 64, 8320),
              ("gemma3 global 32k", 96, 4, 1, 256, 32896), ("gemma3 ring 512", 256, 4, 1, 256, 512)]
    if tiny:
        shapes = [("tiny", 4, 6, 2, 16, 40)]
    out = []
    for name, rows, heads, kv, dim, slots in shapes:
        g = torch.Generator(device=device).manual_seed(0)
        query = torch.randn(rows, heads, 1, dim, device=device, dtype=dtype, generator=g)
        key = torch.randn(rows, kv, 1, dim, device=device, dtype=dtype, generator=g)
        value = torch.randn(rows, kv, 1, dim, device=device, dtype=dtype, generator=g)
        pos = torch.randint(slots // 2, slots - 1, (rows,), device=device, generator=g)
        cache_k = torch.randn(rows, kv, slots, dim, device=device, dtype=dtype, generator=g)
        cache_v = torch.randn(rows, kv, slots, dim, device=device, dtype=dtype, generator=g)
        ref = _reference(query, key, value, cache_k, cache_v, pos)
        valid_bytes = float((pos + 1).sum()) * kv * dim * 2 * cache_k.element_size()
        for kernel in kernels:
            bshd = kernel == "flash"
            ks, vs = (cache_k.transpose(1, 2).contiguous(), cache_v.transpose(1, 2).contiguous()) if bshd else \
                (cache_k.clone(), cache_v.clone())
            wave = Wave([ks], [vs], [None], kernel, decoding=True)
            wave.slot[None], wave.valid[None] = pos, (pos + 1).to(torch.int32)
            wave.masks[None] = (torch.arange(slots, device=device)[None, :] <= pos[:, None])[:, None, None, :]
            cu_q = torch.arange(rows + 1, dtype=torch.int32, device=device)
            wave.cu_decode[None] = (cu_q, cu_q * slots)
            row: dict[str, Any] = {"shape": name, "kernel": kernel, "rows": rows, "slots": slots}
            try:
                with torch.inference_mode():
                    got = decode_attention(wave, 0, query, key, value, dim ** -0.5, None)
                    args = (wave, 0, query, key, value, dim ** -0.5, None)
                    seconds = timed(lambda a=args: decode_attention(*a), device, 20)
                err = float((got.double() - ref).norm() / ref.norm())
                row.update(rel_error=round(err, 6), ms=round(seconds * 1e3, 4),
                           gb_per_s=round(valid_bytes / seconds / 1e9, 1))
            except Exception as exc:  # a kernel this torch lacks: reported, the others go on
                row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            print(json.dumps(row), flush=True)
            out.append(row)
    return out


def _reference(query: Any, key: Any, value: Any, cache_k: Any, cache_v: Any, pos: Any) -> Any:
    """float64 attention of each row's query over its slots 0..pos (the new key and value at pos)."""
    import torch

    rows, heads, _, dim = query.shape
    kv = key.shape[1]
    k, v = cache_k.double().clone(), cache_v.double().clone()
    index = torch.arange(rows, device=query.device)
    k[index, :, pos], v[index, :, pos] = key[:, :, 0].double(), value[:, :, 0].double()
    q = query.double().reshape(rows, kv, heads // kv, dim)
    scores = q @ k.transpose(-1, -2) * dim ** -0.5
    mask = torch.arange(k.shape[2], device=query.device)[None, :] <= pos[:, None]
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return (scores.softmax(-1) @ v).reshape(rows, 1, heads, dim)


def build(config: Any, device: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def wave_table(device: str, kernels: list[str], tiny: bool) -> list[dict[str, Any]]:
    """Part 2: whole waves (prefill + every row decoding its whole budget) per kernel."""
    import torch

    from ctxsynth.llm.hf_packed import PackedGenerator
    from ctxsynth.llm.hf_packed_plan import Row

    cases = [("smollm2", smollm2_shape, 256, 1024), ("smollm2", smollm2_shape, 256, 8192),
             ("gemma3", gemma3_shape, 96, 32768)]
    budget = 64
    if tiny:
        cases, budget = [("smollm2", smollm2_shape, 4, 100), ("gemma3", gemma3_shape, 4, 60)], 8
    out = []
    for name, shape, rows, length in cases:
        model = build(shape(tiny), device)
        g = torch.Generator().manual_seed(1)
        vocab = model.config.vocab_size
        spread = min(128, length // 4)  # prompt lengths spread a little below `length`, as a grid cell's
        prompts = [Row(torch.randint(3, vocab, (length - spread + k % spread,), generator=g).tolist(), budget)
                   for k in range(rows)]
        for kernel in kernels:
            gen = PackedGenerator(model, eos_ids=[], pad_id=0, max_rows=rows, decode_kernel=kernel)
            row: dict[str, Any] = {"model": name, "rows": rows, "length": length, "budget": budget, "kernel": kernel}
            try:
                gen.generate(prompts[:2], lambda wave: [], lambda wave, tokens: None)  # warm-up
                gen.stats = {k: 0 for k in gen.stats}
                _sync(device)
                t0 = time.perf_counter()
                gen.generate(prompts, lambda wave: [], lambda wave, tokens: None)
                _sync(device)
                s = gen.stats
                tokens = sum(len(p.ids) for p in prompts)
                row.update(seconds=round(time.perf_counter() - t0, 3), waves=s["waves"],
                           prefill_s=round(s["prefill_s"], 3), prefill_tokens_per_s=round(tokens / s["prefill_s"]),
                           decode_s=round(s["decode_s"], 3), steps=s["steps"],
                           ms_per_step=round(s["decode_s"] / max(1, s["steps"]) * 1e3, 3))
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            print(json.dumps(row), flush=True)
            out.append(row)
            del gen
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        del model
    return out


def prefill_table(device: str, tiny: bool) -> tuple[list[dict[str, Any]], str]:
    """Part 3: packed prefill tokens/s by chunk size (8k SmolLM2 prompts), and one chunk's profile."""
    import torch

    from ctxsynth.llm.hf_packed import PackedGenerator
    from ctxsynth.llm.hf_packed_plan import Row

    model = build(smollm2_shape(tiny), device)
    length, sizes, rows = (100, [200, 400], 8) if tiny else (8192, [32768, 65536, 131072, 262144], 64)
    g = torch.Generator().manual_seed(2)
    prompts = [Row(torch.randint(3, model.config.vocab_size, (length,), generator=g).tolist(), 1) for _ in range(rows)]
    out = []
    for size in sizes:
        gen = PackedGenerator(model, eos_ids=[], pad_id=0, prefill_tokens=size, max_rows=rows)
        gen.generate(prompts[:2], lambda wave: [], lambda wave, tokens: None)
        gen.stats = {k: 0 for k in gen.stats}
        gen.generate(prompts, lambda wave: [], lambda wave, tokens: None)
        row = {"prefill_tokens": size, "tokens": length * rows, "prefill_s": round(gen.stats["prefill_s"], 3),
               "tokens_per_s": round(length * rows / gen.stats["prefill_s"])}
        print(json.dumps(row), flush=True)
        out.append(row)
    from torch.profiler import ProfilerActivity

    gen = PackedGenerator(model, eos_ids=[], pad_id=0, prefill_tokens=sizes[1], max_rows=rows)
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        gen.generate(prompts[: max(1, sizes[1] // length)], lambda wave: [], lambda wave, tokens: None)
        _sync(device)
    table = prof.key_averages().table(sort_by="cuda_time_total" if cuda else "cpu_time_total", row_limit=20)
    return out, str(table)


def prefill_kernel_table(device: str, tiny: bool) -> list[dict[str, Any]]:
    """Part 4: one layer's causal attention over a chunk of equal-length prompts, per kernel."""
    import torch

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    # (name, heads, kv heads, dim, prompt length, prompts): one chunk of prefill_tokens = 131,072
    shapes = [("gemma3 global 2k", 4, 1, 256, 2048, 64), ("gemma3 global 8k", 4, 1, 256, 8192, 16),
              ("gemma3 global 32k", 4, 1, 256, 32768, 4), ("smollm2 8k", 9, 3, 64, 8192, 16)]
    if tiny:
        shapes = [("tiny", 4, 1, 16, 40, 3)]
    out = []
    for name, heads, kv, dim, length, rows in shapes:
        g = torch.Generator(device=device).manual_seed(4)
        q, k, v = (torch.randn(rows * length, h, dim, device=device, dtype=dtype, generator=g)
                   for h in (heads, kv, kv))
        firsts: dict[int, Any] = {}  # tokens -> the first kernel's output: the reference of its rows
        for label, (fn, lengths) in _prefill_kernels(q, k, v, rows, length, cuda).items():
            row: dict[str, Any] = {"shape": name, "kernel": label, "prompts": rows, "length": length}
            flop = sum(heads * 4 * dim * n * (n + 1) / 2 for n in lengths)  # QK^T and PV over the causal half
            try:
                with torch.inference_mode():
                    got = fn()
                    seconds = timed(fn, device, 5 if cuda else 1)
                    again = fn()
                first = firsts.setdefault(got.shape[0], got)
                row.update(ms=round(seconds * 1e3, 3), tflop_per_s=round(flop / seconds / 1e12, 1),
                           rel_diff=round(float((got.float() - first.float()).norm() / first.float().norm()), 6),
                           digest=_digest(got), repeat_equal=bool(torch.equal(got, again)))
            except Exception as exc:  # a backend this torch or card lacks for the shape: reported, the rest go on
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            print(json.dumps(row), flush=True)
            out.append(row)
    return out


def _digest(t: Any) -> str:
    """The first 16 hex digits of the sha256 of a tensor's bits (bf16 read as int16)."""
    import hashlib

    import torch

    bits = t.contiguous().view(torch.int16) if t.dtype == torch.bfloat16 else t.contiguous()
    return hashlib.sha256(bits.cpu().numpy().tobytes()).hexdigest()[:16]


def grid_lengths(rows: int, length: int) -> list[int]:
    """`rows` prompt lengths spread over the 46 tokens below `length`, sorted as a packed wave's are."""
    return sorted(length - (r * 13) % 46 for r in range(rows))


def _prefill_kernels(q: Any, k: Any, v: Any, rows: int, length: int, cuda: bool) -> dict[str, Any]:
    """{label: (call, prompt lengths)} of each kernel on `rows` packed prompts of `length` tokens: flash
    varlen (CUDA), the packed path's dense prefill, SDPA's backends on the dense (rows, heads, length,
    dim) view (GQA native and kv heads expanded), then flash varlen and the dense prefill on prompts of
    the grid's spread of lengths (`grid_lengths`, the first tokens of the same chunk)."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from ctxsynth.llm.hf_packed_attention import dense_attention, dense_groups, flash_varlen
    from ctxsynth.varlen import per_sequence_sdpa

    heads, kv, dim = q.shape[1], k.shape[1], q.shape[2]
    scale = dim ** -0.5
    cu = torch.arange(0, rows * length + 1, length, dtype=torch.int32, device=q.device)  # sequence starts

    def dense(backend: Any, expand: bool) -> Any:
        qd, kd, vd = (t.view(rows, length, -1, dim).transpose(1, 2) for t in (q, k, v))
        if expand:
            kd, vd = kd.repeat_interleave(heads // kv, 1), vd.repeat_interleave(heads // kv, 1)
        with sdpa_kernel(backend):
            o = F.scaled_dot_product_attention(qd, kd, vd, is_causal=True, scale=scale, enable_gqa=not expand)
        return o.transpose(1, 2).reshape(rows * length, heads, dim)

    same = [length] * rows
    spread = grid_lengths(rows, length)
    n = sum(spread)
    cu_spread = torch.tensor([0, *itertools.accumulate(spread)], dtype=torch.int32, device=q.device)
    cudnn = [SDPBackend.CUDNN_ATTENTION] if cuda else None  # the CPU runs the same code on its backends
    dense_label = "ctxsynth_dense_cudnn" if cuda else "ctxsynth_dense"
    groups, spread_groups = dense_groups(same, q.device), dense_groups(spread, q.device)
    kernels: dict[str, Any] = {}
    if cuda:
        kernels["flash_varlen"] = (lambda: flash_varlen(q, k, v, cu, length, scale, None), same)
    kernels[dense_label] = (lambda: dense_attention(q, k, v, groups, scale, cudnn), same)
    backends = {"sdpa_flash_dense": SDPBackend.FLASH_ATTENTION, "sdpa_cudnn_dense": SDPBackend.CUDNN_ATTENTION,
                "sdpa_efficient_dense": SDPBackend.EFFICIENT_ATTENTION, "sdpa_math_dense": SDPBackend.MATH}
    for label, backend in backends.items():
        if cuda and backend == SDPBackend.MATH:
            continue  # the whole score matrix in memory: 32k prompts do not fit
        kernels[label] = (lambda b=backend: dense(b, False), same)
        kernels[label + "_kv_expanded"] = (lambda b=backend: dense(b, True), same)
    qs, ks, vs = q[:n], k[:n], v[:n]
    if cuda:
        kernels["flash_varlen_grid_lengths"] = (lambda: flash_varlen(qs, ks, vs, cu_spread, length, scale, None),
                                                spread)
    else:  # the CPU's packed prefill: SDPA prompt by prompt
        kernels["per_prompt_sdpa_grid_lengths"] = (lambda: per_sequence_sdpa(qs, ks, vs, cu_spread, scale, None),
                                                   spread)
    kernels[dense_label + "_grid_lengths"] = (lambda: dense_attention(qs, ks, vs, spread_groups, scale, cudnn),
                                              spread)
    return kernels


def dense_wrapper_table(device: str, tiny: bool) -> list[dict[str, Any]]:
    """Part 5: the cost of `prefill_kernel: dense` around its kernel (grouping's copies in and out):
    dense_attention timed with SDPA replaced by a copy of its query, on Gemma-3's global layer shape
    at one prompt length and at the grid's spread of lengths (`grid_lengths`)."""
    import torch
    import torch.nn.functional as F

    from ctxsynth.llm.hf_packed_attention import dense_attention, dense_groups

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    heads, kv, dim = (4, 1, 16) if tiny else (4, 1, 256)
    rows, length = (3, 400) if tiny else ((64, 2048) if cuda else (16, 2048))  # tiny: the spread still pads
    out = []
    for label, lengths in (("one length", [length] * rows), ("grid lengths", grid_lengths(rows, length))):
        tokens = sum(lengths)
        g = torch.Generator(device=device).manual_seed(5)
        q, k, v = (torch.randn(tokens, h, dim, device=device, dtype=dtype, generator=g) for h in (heads, kv, kv))
        groups = dense_groups(lengths, q.device)
        sdpa = F.scaled_dot_product_attention
        # the stand-in writes the query's bytes once, as an attention kernel writes its output
        F.scaled_dot_product_attention = lambda q, k, v, **kw: q.clone(memory_format=torch.preserve_format)
        try:
            with torch.inference_mode():
                seconds = timed(functools.partial(dense_attention, q, k, v, groups, None), device, 20 if cuda else 5)
                stand_in = timed(q.clone, device, 20 if cuda else 5)
        finally:
            F.scaled_dot_product_attention = sdpa
        row = {"shape": f"gemma3 global {label}", "prompts": rows, "tokens": tokens, "groups": len(groups),
               "padded_groups": sum(x.pad is not None for x in groups), "ms": round(seconds * 1e3, 3),
               "stand_in_ms": round(stand_in * 1e3, 3)}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--smoke", action="store_true", help="tiny shapes (CPU smoke test)")
    p.add_argument("--kernels", nargs="+", default=None, help="default: every kernel the device runs")
    parts = ["kernels", "waves", "prefill", "prefill_kernels", "dense_wrapper"]
    p.add_argument("--parts", nargs="+", choices=parts, default=parts, help="which of the five parts to run (default: all)")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    import torch
    import transformers

    from ctxsynth.llm.hf_packed_attention import DECODE_KERNELS

    cuda = a.device.startswith("cuda")
    kernels = a.kernels or [k for k in DECODE_KERNELS if cuda or k in ("sdpa", "bmm")]
    result: dict[str, Any] = {
        "command": " ".join(sys.argv), "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "gpu": torch.cuda.get_device_name(0) if cuda else "none (cpu)"}
    if "kernels" in a.parts:
        result["kernels"] = kernel_table(a.device, kernels, a.smoke)
    if "waves" in a.parts:
        result["waves"] = wave_table(a.device, kernels, a.smoke)
    if "prefill" in a.parts:
        result["prefill"], table = prefill_table(a.device, a.smoke)
        print(table, flush=True)
    if "prefill_kernels" in a.parts:
        result["prefill_kernels"] = prefill_kernel_table(a.device, a.smoke)
    if "dense_wrapper" in a.parts:
        result["dense_wrapper"] = dense_wrapper_table(a.device, a.smoke)
    if a.out:
        a.out.write_text(json.dumps(result, indent=1) + "\n")
    waves = [w for w in result.get("waves", []) if "ms_per_step" in w and w["model"] == "smollm2"
             and w["length"] == (100 if a.smoke else 8192)]
    best = min(waves, key=lambda w: w["ms_per_step"]) if waves else None
    print(f"best_decode_kernel: {best and best['kernel']} decode_ms_per_step: {best and best['ms_per_step']} "
          f"prefill_tokens_per_s: {best and best['prefill_tokens_per_s']}")


if __name__ == "__main__":
    main()
