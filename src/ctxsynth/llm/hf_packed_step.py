"""One decoding step of a packed wave (ctxsynth.llm.hf_packed): every live row's last token and
position in, its next-token logits out, reading the wave's cache through the packed attention
(ctxsynth.llm.hf_packed_attention). On CUDA the step is captured once as a CUDA graph and replayed,
so a step costs one launch, not one per kernel; where capture fails, it runs eagerly."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ctxsynth.llm.hf_packed_attention import Wave

log = logging.getLogger(__name__)


class DecodeStep:
    """One decoding step of a wave (token, position per row -> logits), a CUDA graph where it can be.
    `gen` is the wave's PackedGenerator (its model, device, cuda_graphs; not imported: no circle)."""

    def __init__(self, gen: Any, wave: Wave, rows: int, cap: int) -> None:
        self.gen, self.wave = gen, wave
        self.token = torch.zeros(rows, dtype=torch.long, device=gen.device)
        self.position = torch.zeros(rows, dtype=torch.long, device=gen.device)
        self.slots = torch.arange(cap, device=gen.device)
        if wave.kernel == "flash":  # one query per row; a row's keys start at row x slots
            cu_q = torch.arange(rows + 1, dtype=torch.int32, device=gen.device)
            wave.cu_decode = {w: (cu_q, cu_q * wave.slots(w)) for w in set(wave.windows)}
        self.graph: Any = None
        self.out: torch.Tensor | None = None
        self.captured = False

    def _forward(self) -> torch.Tensor:
        wave = self.wave
        wave.decoding = True
        pos = self.position
        for window in set(wave.windows):  # the new token's slot and the slots valid after it
            slot = pos if window is None else pos % window
            valid = pos + 1 if window is None else (pos + 1).clamp(max=window)
            wave.slot[window], wave.valid[window] = slot, valid.to(torch.int32)
            if wave.kernel in ("sdpa", "bmm"):
                wave.masks[window] = (self.slots[:wave.slots(window)][None, :] < valid[:, None])[:, None, None, :]
        out = self.gen.model(input_ids=self.token[:, None], position_ids=pos[:, None], use_cache=False)
        return out.logits[:, -1].float()

    def __call__(self, token: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        self.token.copy_(token)
        self.position.copy_(position)
        if not self.gen.cuda_graphs:
            return self._forward()
        if not self.captured:
            self.captured = True
            try:
                self._capture()
            except Exception as exc:  # a model that cannot be captured decodes eagerly
                log.warning("CUDA graph capture failed (%s: %s); decoding without graphs", type(exc).__name__, exc)
                self.graph = None
                self.gen.cuda_graphs = False
                return self._forward()
        if self.graph is None:
            return self._forward()
        self.graph.replay()
        assert self.out is not None
        return self.out.clone()

    def _capture(self) -> None:
        stream = torch.cuda.Stream(self.gen.device)
        stream.wait_stream(torch.cuda.current_stream(self.gen.device))
        # the warm-up writes the same cache slots the real step will write again
        with torch.cuda.stream(stream):
            self._forward()
        torch.cuda.current_stream(self.gen.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.out = self._forward()
        self.graph = graph
