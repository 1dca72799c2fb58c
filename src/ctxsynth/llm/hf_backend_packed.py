"""The transformers backend's side of packed generation (ctxsynth.llm.hf_packed): whether the model can be
packed, the generator built once per backend, and the requests turned into rows and back into results.
TransformersBackend (ctxsynth.llm.hf_backend) mixes it in; the padded path and loading stay there."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ctxsynth.errors import is_out_of_memory
from ctxsynth.llm.base import ChatRequest, ChatResult
from ctxsynth.llm.hf_decoding import request_seed, row_processors

log = logging.getLogger(__name__)


class PackedPath:
    """Packed generation over a loaded model; the backend provides the attributes and helpers below."""

    path: Path
    packed: bool
    prefill_tokens: int
    max_rows: int
    decode_kernel: str
    prefill_kernel: str
    memory_fraction: float
    repetition_penalty: float
    no_repeat_ngram_size: int
    _model: Any
    _packed: Any  # the PackedGenerator, built at the first packed request
    _encode_s: float
    _decode: Callable[[list[int], int, int], ChatResult]
    _eos_ids: Callable[[], list[int]]
    _pad_id: Callable[[], int]

    def _packed_applies(self) -> bool:
        """False (once logged) when the model's generation_config asks for logit processors that only
        the default path applies (they read the prompt too), or its attention cannot be packed."""
        if self._packed is not None:
            return True
        from ctxsynth.llm.hf_packed_plan import packing_blockers

        asks = packing_blockers(self._model)
        if asks:
            log.warning("%s: packed generation off (%s); using model.generate", self.path.name, ", ".join(asks))
            self.packed = False
        return self.packed

    def packed_stats(self) -> dict[str, float]:
        """The packed path's running totals (waves, prefill and decoding seconds, steps) and the seconds
        spent encoding prompts (encode_s, chat template and tokenizer); empty before it ran."""
        return {**self._packed.stats, "encode_s": self._encode_s} if self._packed is not None else {}

    def _generate_packed(self, requests: Sequence[ChatRequest], prompts: dict[int, list[int]], order: list[int],
                         finish: Callable[[int, ChatResult], None]) -> None:
        """The packed path over all requests at once (waves by token count); `finish(i, result)` as
        each wave ends."""
        from ctxsynth.llm.hf_packed import PackedGenerator
        from ctxsynth.llm.hf_packed_plan import Row

        if self._packed is None:
            self._packed = PackedGenerator(self._model, self._eos_ids(), self._pad_id(), prefill_tokens=self.prefill_tokens,
                                           max_rows=self.max_rows, decode_kernel=self.decode_kernel,
                                           prefill_kernel=self.prefill_kernel, memory_fraction=self.memory_fraction)
        rows = [Row(prompts[i], requests[i].params.max_tokens) for i in order]
        done: set[int] = set()

        def processors(wave: list[int]) -> list[Any]:
            params = [requests[order[j]].params for j in wave]
            return row_processors([request_seed(requests[order[j]]) for j in wave], [p.temperature for p in params],
                                  [p.top_p for p in params], 0, self.repetition_penalty, self.no_repeat_ngram_size)

        def on_wave(wave: list[int], tokens: list[list[int]]) -> None:
            for j, toks in zip(wave, tokens, strict=True):
                done.add(order[j])
                finish(order[j], self._decode(toks, rows[j].budget, len(rows[j].ids)))

        try:
            self._packed.generate(rows, processors, on_wave)
        except RuntimeError as exc:  # out of memory with one prompt alone: it does not fit
            if not is_out_of_memory(exc):
                raise
            for i in order:
                if i not in done:
                    finish(i, ChatResult(None, None, error=f"generation: out of memory: {exc}"))
