"""Packed generation for prefill-heavy work: prompts without padding, batches cut by token count.

`ctxsynth eval` reads long prompts and writes short answers; `model.generate` pads every batch to its
longest prompt, cuts batches by row count and finds the memory limit by running out of it. Here:

- **Waves by token count.** Prompts are sorted by length and grouped into waves whose KV cache
  (rows x the bytes a row of the longest prompt + reply budget takes, from the model config; a
  sliding-window layer keeps a ring of its window) fits a share of the device memory free when the
  wave starts; a wave is one decoding batch. Out of memory (another process on the GPU grew) reruns
  the wave at half its bytes, a ceiling that doubles back after each wave that fits.
- **Packed prefill.** Each wave's prompts run through the model in chunks of up to
  `prefill_tokens` tokens as one flattened row, position ids restarting per prompt, with a
  varlen attention kernel (flash varlen on CUDA; flex attention for sliding-window layers where the
  installed torch's kernel has no window; per-prompt SDPA on the CPU): no padding, no mask, no work
  between prompts (`prefill_kernel: dense` runs full-attention layers on right-padded groups of
  similar length through cuDNN instead: ctxsynth.llm.hf_packed_attention). Only each prompt's last
  position goes through the LM head (`logits_to_keep`).
  Keys and values land straight in the wave's cache. On CUDA the decoder layers around the
  attention call are compiled (torch.compile, dynamic token count; `compile_prefill`): a small
  model's prefill spent about half its time in unfused elementwise kernels (norms in float32, rotary
  embeddings, the gated MLP). Decoding runs them eagerly (and captures that as a CUDA graph).
- **Decoding** reads that cache, each row its own valid slots: on CUDA through flash varlen with
  per-row key counts (`seqused_k`, no mask; `decode_kernel` picks another of
  ctxsynth.llm.hf_packed_attention's), on the CPU through SDPA with a length mask; sliding-window
  layers (Gemma-3) read their ring. On CUDA one decoding step is captured as a CUDA graph per wave
  and replayed (no Python or launch cost per kernel); rows stop at their end token or budget, ended
  rows leave the wave once few are left, and the wave ends when all have.

The model runs with the `ctxsynth_packed` attention implementation (ctxsynth.llm.hf_packed_attention);
what the kernel needs (the cache, the chunk's boundaries, the decoding lengths) comes from the
active `Wave`, set around each wave's forwards. Architectures whose attention goes
through that interface work (Llama/SmolLM2, Qwen2, Gemma-3); logit soft-capping in attention
(Gemma-2) does not, and is refused.

Sampling goes through the same per-row processors as the default path (ctxsynth.llm.hf_decoding),
so per-request seeds keep their guarantee: a row's tokens depend on its prompt, parameters and seed
only, not on its wave. Greedy texts equal `model.generate`'s in float32 on the CPU (tested); other
kernels round differently in bf16 on the GPU (docs/results/eval_throughput.md).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ctxsynth.errors import is_out_of_memory
from ctxsynth.llm.hf_packed_attention import (
    CUDA_DECODE_KERNEL,
    DECODE_KERNELS,
    PACKED,
    PREFILL_KERNELS,
    Wave,
    active,
    dense_groups,
    register,
    slots_for,
)
from ctxsynth.llm.hf_packed_plan import Row, WavePlanner, by_length, model_shape
from ctxsynth.llm.hf_packed_step import DecodeStep

log = logging.getLogger(__name__)

Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (generated ids, logits) -> logits


class PackedGenerator(WavePlanner):
    """Generates for many prompts at once: waves by token count, packed prefill, graph decoding."""

    def __init__(self, model: Any, eos_ids: Sequence[int], pad_id: int, *, prefill_tokens: int = 65536,
                 max_rows: int = 1024, memory_fraction: float = 0.75, cuda_graphs: bool = True,
                 compact_below: float = 0.5, compact_min_rows: int = 8, decode_kernel: str = "auto",
                 prefill_kernel: str = "varlen", compile_prefill: bool | None = None) -> None:
        self.model = model
        # finished rows leave a wave once at most `compact_below` of its rows are still decoding
        # (and it has >= compact_min_rows rows): the rest move to a smaller cache and step
        self.compact_below = compact_below
        self.compact_min_rows = compact_min_rows
        self.shape = model_shape(model.config)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        if decode_kernel == "auto":
            decode_kernel = CUDA_DECODE_KERNEL if self.device.type == "cuda" else "sdpa"
        if decode_kernel not in DECODE_KERNELS:
            raise ValueError(f"decode_kernel must be auto or one of {', '.join(DECODE_KERNELS)}, got {decode_kernel!r}")
        if decode_kernel == "flash" and self.device.type != "cuda":
            raise ValueError(f"decode_kernel {decode_kernel!r} runs on CUDA only")
        self.decode_kernel = decode_kernel
        if prefill_kernel not in PREFILL_KERNELS:
            raise ValueError(f"prefill_kernel must be one of {', '.join(PREFILL_KERNELS)}, got {prefill_kernel!r}")
        self.prefill_kernel = prefill_kernel
        self.eos = torch.tensor(sorted(set(eos_ids)), dtype=torch.long, device=self.device)
        self._eos_set = set(eos_ids)  # for cutting replies on the host (no device read per row)
        self.pad_id = pad_id
        self.prefill_tokens = prefill_tokens
        self.max_rows = max_rows
        self.memory_fraction = memory_fraction
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        # where the time went (benchmarks/eval_throughput.py prints it): waves, seconds in prefill and in
        # decoding (one device sync per phase of a wave), decoding steps, rows x steps
        self.stats = {"waves": 0, "prefill_s": 0.0, "decode_s": 0.0, "steps": 0, "row_steps": 0, "oom_splits": 0,
                      "compactions": 0}
        register()
        if compile_prefill is None:  # on CUDA; on the CPU compiling costs more than it saves for small work
            compile_prefill = self.device.type == "cuda"
        self.compiled = _compile_layers(model) if compile_prefill else False
        model.config._attn_implementation = PACKED
        for sub in model.modules():  # nested configs (text_config) hold their own copy
            cfg = getattr(sub, "config", None)
            if cfg is not None and hasattr(cfg, "_attn_implementation"):
                cfg._attn_implementation = PACKED

    def generate(self, rows: Sequence[Row], processors: Callable[[list[int]], list[Processor]],
                 on_wave: Callable[[list[int], list[list[int]]], None]) -> None:
        """Generate every row; `processors(wave)` gives the logit processors of a wave's rows (in
        wave order), `on_wave(wave, tokens)` receives each wave's generated tokens (end token
        included when one was produced). Each wave is planned when it starts, from the memory free
        then. Out of memory (another process took what was free): the wave reruns under half its
        bytes, and that ceiling doubles back after each wave that fits, so one squeeze does not keep
        every later wave small."""
        order = by_length(rows)
        ceiling: int | None = None
        start = 0
        while start < len(order):
            budget = self.kv_budget_bytes()
            if ceiling is not None:
                budget = min(budget, ceiling)
            end = self._take(rows, order, start, budget)
            wave = order[start:end]
            try:
                tokens = self._run_wave([rows[i] for i in wave], _subset(processors, wave))
            except RuntimeError as exc:  # torch's OutOfMemoryError, or CUDA's OOM at a kernel launch (AcceleratorError)
                if not is_out_of_memory(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if len(wave) == 1:
                    raise
                ceiling = max(1, min(budget, self._bytes(rows, wave)) // 2)
                self.stats["oom_splits"] += 1
                log.warning("out of memory in a wave of %d rows: cache budget -> %d MiB", len(wave), ceiling >> 20)
                continue
            on_wave(wave, tokens)
            start = end
            if ceiling is not None:
                ceiling *= 2

    def _run_wave(self, rows: list[Row], processors: Callable[[list[int]], list[Processor]]) -> list[list[int]]:
        s, n = self.shape, len(rows)
        cap = max(len(r.ids) + r.budget for r in rows)
        bshd = self.decode_kernel == "flash"

        def cache(window: int | None) -> torch.Tensor:
            # zeros, not empty: a masked slot's weight is 0, and 0 x a NaN left in memory is NaN
            slots = slots_for(cap, window)
            shape = (n, slots, s.kv_heads, s.head_dim) if bshd else (n, s.kv_heads, slots, s.head_dim)
            return torch.zeros(shape, device=self.device, dtype=self.dtype)

        keys = [cache(w) for w in s.windows]
        values = [cache(w) for w in s.windows]
        with active(Wave(keys, values, s.windows, self.decode_kernel, self.prefill_kernel)) as wave, \
                torch.inference_mode():
            t0 = time.perf_counter()
            first = self._prefill(wave, rows)
            self._sync()
            t1 = time.perf_counter()
            with torch.compiler.set_stance("force_eager"):  # decoding: eager kernels, captured as a graph
                tokens = self._decode(wave, rows, cap, first, processors)
        self.stats["waves"] += 1
        self.stats["prefill_s"] += t1 - t0
        self.stats["decode_s"] += time.perf_counter() - t1
        return tokens

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _prefill(self, wave: Wave, rows: list[Row]) -> torch.Tensor:
        """Every row's prompt through the model in packed chunks; the last position's logits (n, V)."""
        logits: list[torch.Tensor] = []
        start = 0
        while start < len(rows):
            end, total = start, 0
            while end < len(rows) and (end == start or total + len(rows[end].ids) <= self.prefill_tokens):
                total += len(rows[end].ids)
                end += 1
            logits.append(self._prefill_chunk(wave, rows, range(start, end)))
            start = end
        return torch.cat(logits)

    def _prefill_chunk(self, wave: Wave, rows: list[Row], chunk: range) -> torch.Tensor:
        lengths = [len(rows[r].ids) for r in chunk]
        # through numpy: a list's ints convert ~7x faster than torch.tensor on a flattened list (25M
        # prompt tokens of the 32k grid: ~3 s of the CPU before the GPU can start)
        ids = torch.from_numpy(np.concatenate([np.asarray(rows[r].ids, dtype=np.int64) for r in chunk])).to(self.device)
        positions = torch.cat([torch.arange(n) for n in lengths]).to(self.device)
        cu = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32, device=self.device)
        counts = torch.tensor(lengths)
        rows_of = torch.repeat_interleave(torch.tensor(list(chunk)), counts).to(self.device)
        wave.cu, wave.max_len, wave.decoding, wave.doc = cu, max(lengths), False, rows_of
        wave.targets = {None: (None, rows_of, positions)}
        if self.prefill_kernel == "dense":
            wave.dense = dense_groups(lengths, self.device)
        own_length = torch.repeat_interleave(counts, counts).to(self.device)
        for window in {w for w in self.shape.windows if w is not None}:  # a ring keeps each prompt's last W
            tokens = (positions >= own_length - window).nonzero().flatten()
            wave.targets[window] = (tokens, rows_of[tokens], positions[tokens] % window)
        kw = {"input_ids": ids[None], "position_ids": positions[None], "use_cache": False,
              "logits_to_keep": (cu[1:] - 1).long()}
        if self.compiled:
            try:
                return self.model(**kw).logits[0].float()
            except Exception as exc:  # the compiler failed here: prefill eagerly from now on (same writes again)
                log.warning("compiled prefill failed (%s: %s); prefilling eagerly", type(exc).__name__, exc)
                self.compiled = False
        with torch.compiler.set_stance("force_eager"):
            return self.model(**kw).logits[0].float()

    def _decode(self, wave: Wave, rows: list[Row], cap: int, first: torch.Tensor,
                processors: Callable[[list[int]], list[Processor]]) -> list[list[int]]:
        """Decode the wave's rows; returns each row's tokens. Rows that have ended are dropped from
        the cache and the step when few enough are left (`compact_below`): the steps after that
        read only the live rows' cache. A row's tokens do not depend on which rows share its step
        (per-row processors), so dropping changes no text, only the work."""
        live = list(range(len(rows)))  # wave positions of the rows still in the cache
        out: dict[int, list[int]] = {}
        budgets = torch.tensor([r.budget for r in rows], device=self.device)
        lengths = torch.tensor([len(r.ids) for r in rows], device=self.device)
        # a row's last position inside its own budget: a row that has ended keeps stepping with the wave
        # until it is dropped, and without this bound a long prompt with a short budget steps past the
        # wave's cache (cap = the longest prompt + budget of any row, not of this one)
        last = lengths + budgets - 1
        generated = torch.empty(len(rows), 0, dtype=torch.long, device=self.device)
        done = torch.zeros(len(rows), dtype=torch.bool, device=self.device)
        chain = processors(live)
        step = DecodeStep(self, wave, len(live), cap)
        logits = first
        longest = max(r.budget for r in rows)
        for t in range(longest):
            token = self._pick(generated, logits, chain)
            token = torch.where(done, torch.full_like(token, self.pad_id), token)
            generated = torch.cat([generated, token[:, None]], dim=1)
            done = done | torch.isin(token, self.eos) | (budgets <= t + 1)
            ended = int(done.sum())
            if t + 1 == longest or ended == len(live):
                break
            if len(live) >= self.compact_min_rows and len(live) - ended <= self.compact_below * len(live):
                del step  # its graph's memory first
                keep = self._drop_ended(wave, live, done, generated, out)
                live = [live[j] for j in keep.tolist()]
                budgets, lengths, last, generated, done, token = (
                    x[keep] for x in (budgets, lengths, last, generated, done, token))
                chain = processors(live)
                step = DecodeStep(self, wave, len(live), cap)
            logits = step(token, torch.minimum(lengths + t, last))
            self.stats["steps"] += 1
            self.stats["row_steps"] += len(live)
        for j, position in enumerate(live):
            out[position] = generated[j].tolist()
        return [self._cut(row, out[i]) for i, row in enumerate(rows)]

    def _drop_ended(self, wave: Wave, live: list[int], done: torch.Tensor, generated: torch.Tensor,
                    out: dict[int, list[int]]) -> torch.Tensor:
        """The ended rows' tokens go to `out` and their cache is let go; returns the live rows' indices."""
        for j in done.nonzero().flatten().tolist():
            out[live[j]] = generated[j].tolist()
        keep = (~done).nonzero().flatten()
        wave.keys[:] = [k.index_select(0, keep) for k in wave.keys]
        wave.values[:] = [v.index_select(0, keep) for v in wave.values]
        self.stats["compactions"] += 1
        return keep

    def _pick(self, generated: torch.Tensor, logits: torch.Tensor, processors: list[Processor]) -> torch.Tensor:
        for processor in processors:
            logits = processor(generated, logits)
        return logits.argmax(dim=-1)

    def _cut(self, row: Row, tokens: list[int]) -> list[int]:
        tokens = tokens[:row.budget]
        stop = next((k for k, t in enumerate(tokens) if t in self._eos_set), None)
        return tokens if stop is None else tokens[:stop + 1]


def _subset(processors: Callable[[list[int]], list[Processor]],
            wave: list[int]) -> Callable[[list[int]], list[Processor]]:
    """The processors of some of a wave's rows, given by their positions in the wave."""
    return lambda positions: processors([wave[j] for j in positions])


def _compile_layers(model: Any) -> bool:
    """Compile every decoder layer (a module with `self_attn` and `mlp`) in place, token count dynamic;
    the attention call inside stays eager (ctxsynth.llm.hf_packed_attention). One compiled graph
    serves all layers of a class (parameters are graph inputs). False when nothing was compiled."""
    layers = [m for m in model.modules() if hasattr(m, "self_attn") and hasattr(m, "mlp")]
    for layer in layers:
        layer.compile(dynamic=True)
    return bool(layers)
