"""The `vllm` backend: in-process offline batch generation with vLLM on local GPUs.

All requests of a batch go to vLLM in one `LLM.chat` call (vLLM schedules them itself), each with
its own SamplingParams, so per-request seeds keep sampled outputs independent of the batch. vLLM
is an optional dependency (a CUDA install of your own): it is imported when the backend is built,
with a clear error when missing. Not exercised by CI (no GPU there); the contract it implements is
the one every backend test checks (one ChatResult per request, in order, failures as results).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ctxsynth.errors import MissingDependency
from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, ResultCallback
from ctxsynth.models import resolve_model_path

log = logging.getLogger(__name__)


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model: str, tensor_parallel_size: int = 1, dtype: str = "auto",
                 max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                 engine_options: dict[str, Any] | None = None) -> None:
        super().__init__(model)
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise MissingDependency(
                "the vllm backend needs vLLM on a CUDA machine: pip install vllm (see vLLM's install guide), "
                "or serve the model with `vllm serve` and use llm.backend=openai with options.base_url"
            ) from None
        self._engine_kwargs = {"tensor_parallel_size": tensor_parallel_size, "dtype": dtype,
                               "max_model_len": max_model_len, "gpu_memory_utilization": gpu_memory_utilization,
                               **(engine_options or {})}
        self._llm: Any = None

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "dtype": self._engine_kwargs["dtype"]}

    def _engine(self) -> Any:
        if self._llm is None:
            from vllm import LLM

            kwargs = {k: v for k, v in self._engine_kwargs.items() if v is not None}
            self._llm = LLM(model=resolve_model_path(self.model), **kwargs)
        return self._llm

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        from vllm import SamplingParams

        if not requests:
            return []
        params = [SamplingParams(temperature=r.params.temperature, top_p=r.params.top_p,
                                 max_tokens=r.params.max_tokens, seed=r.params.seed) for r in requests]
        try:
            outputs = self._engine().chat([list(r.messages) for r in requests], params, use_tqdm=False)
        except Exception as e:  # noqa: BLE001 - one engine failure must not lose the batch silently
            log.error("vllm generation failed: %s", e)
            results = [ChatResult(None, None, error=f"vllm_error: {e}") for _ in requests]
        else:
            results = [self._result(o) for o in outputs]
        for i, result in enumerate(results):
            if on_result:
                on_result(i, result)
        return results

    @staticmethod
    def _result(output: Any) -> ChatResult:
        completion = output.outputs[0]
        usage = {"prompt_tokens": len(output.prompt_token_ids or []), "completion_tokens": len(completion.token_ids)}
        return ChatResult(text=completion.text, finish_reason=completion.finish_reason or "stop", usage=usage)

    def close(self) -> None:
        self._llm = None
