"""The `transformers` backend: a local Hugging Face causal LM on CPU or GPU, batched generation.

It serves the embedded default (SmolLM2-135M-Instruct) and any local model folder. Sampling is
reproducible per request, whatever else shares its batch and however the run is sharded: instead
of the library's sampler, which draws from one global random stream for the whole batch, each row
adds Gumbel noise drawn from its own generator, seeded from (request seed, decoding step), to the
temperature-scaled, nucleus-filtered logits and takes the argmax. The Gumbel-max trick makes that
argmax a sample from the softmax, so this is ordinary temperature/top-p sampling. Temperature 0 is
plain greedy decoding. The noise is drawn on the model's device (mt19937 on the CPU, Philox on
CUDA): a seed gives the same text on the same kind of device, not across kinds (nor do the
logits agree bit for bit across devices or dtypes).
Logit processors that the model's own generation_config.json asks for (a repetition penalty, say)
still apply, before ours; its sampling defaults (temperature, top-k, top-p) do not.
Two backend options curb the loops small models fall into, on the reply's own tokens only (the
prompt is never penalised, so a reply can still quote it): `repetition_penalty` (transformers'
RepetitionPenaltyLogitsProcessor: a generated token's logit is divided by it when positive,
multiplied when negative) and `no_repeat_ngram_size` (an n-gram of generated tokens never occurs twice).

A request whose last message is an assistant message is a prefill: the chat template renders that
message open (`continue_final_message`) and the model continues it; the result's text is the
continuation only, without the prefilled text (`prefill = True` says this backend can).

`devices` runs one replica per device, each in its own process (ctxsynth.llm.replicas): whole
batches, cut as one replica would cut them, go to whichever replica is free. On CPU the texts are
the same as with one replica (tested). On CUDA, attention never uses cuDNN's kernel: with it, one
H200 gave other texts for the same batches in a second process (docs/results/multigpu.md); without
it, two processes on one GPU gave identical texts, and two replicas on two H200s the texts of one,
with and without `static_cache`.

`static_cache: true` decodes with a static KV cache sized for the batch's longest possible reply
(rounded up to a multiple of 256 tokens, so that batches share one shape), every batch padded to
`batch_size` rows with one-token dummy rows. On CUDA, transformers then runs each decoding step as
a torch.compile'd forward in "reduce-overhead" mode (CUDA graphs): one graph launch per step instead
of a launch per kernel, which is what limits a small model (SmolLM2-135M decodes launch-bound: the
GPU idles ~80% of each step without it). The first batch of each shape compiles (tens of seconds;
`load()` does not). Texts differ from the default path in floating point (other kernels), so it is
part of the backend's identity and of the request cache's keys.

`packed: auto` (the default: on CUDA only; `true` also on the CPU, `false` never) runs the packed
path of ctxsynth.llm.hf_packed: no padding, waves cut by token count from the planned KV-cache
memory, varlen attention, compiled prefill, CUDA-graph decoding; 5.5x `model.generate` on a 1,600-item
NIAH grid on an H100 (docs/results/eval_throughput.md). Greedy texts equal this path's in float32 on the CPU;
`prefill_tokens` (tokens per packed forward), `max_rows` (rows per wave), `decode_kernel`
(`auto`, or one of ctxsynth.llm.hf_packed_attention.DECODE_KERNELS) and `prefill_kernel` (`varlen`,
the default, or `dense`: cuDNN on right-padded groups for full-attention layers, opt-in) tune it;
`memory_fraction` (default 0.75) is the share of the GPU's free memory a wave's KV cache may take,
measured before each wave: lower it where several processes share one GPU (Table 3 v2's lanes). It
is part of the identity when on (`prefill_kernel` only when not the default; `memory_fraction` never:
it decides which rows share a wave, not what they generate).

Batch invariance holds up to floating point: a padded row's logits differ from the same row run
alone by ~1e-5 (other matrix shapes, other summation orders), which can flip a near-tie.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxsynth.errors import ConfigError, MissingDependency, PathNotFound, is_out_of_memory
from ctxsynth.llm import hf_prompts
from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, ResultCallback
from ctxsynth.models import pick_dtype, resolve_model_path, weights_fingerprint

try:
    import torch

    from ctxsynth.llm.hf_backend_packed import PackedPath
    from ctxsynth.llm.hf_decoding import GeneratedNoRepeatNGram, RowGumbelSampler, request_seed
    from ctxsynth.llm.hf_packed_attention import CUDA_DECODE_KERNEL, DECODE_KERNELS, PREFILL_KERNELS
    from ctxsynth.llm.hf_padded import generate_padded
except ImportError as exc:  # checked when the module is imported through the registry
    raise MissingDependency(
        "the 'transformers' backend needs torch and transformers: pip install torch 'ctxsynth[local]'"
    ) from exc

__all__ = ["GeneratedNoRepeatNGram", "RowGumbelSampler", "TransformersBackend"]
log = logging.getLogger(__name__)

class TransformersBackend(PackedPath, Backend):
    """Batched chat generation with a local transformers model (loaded on first use)."""

    name = "transformers"
    raw_prompts = True  # accepts a single RAW_ROLE message (see ctxsynth.llm.base)
    prefill = True  # continues a final assistant message (see the module docstring)
    reuses_prompt_ids = True  # hf_prompts.encode_all takes the eval runner's ids (ctxsynth.tokenize.shared_encodings)
    _pool: Any = None  # a ReplicaPool when `devices` names more than one replica
    _config: Any = None  # the model config, loaded without the model in the replicas' parent

    def __init__(self, model: str = "smollm2-135m-instruct", device: str = "auto", dtype: str = "auto",
                 batch_size: int = 8, max_input_tokens: int | None = None, repetition_penalty: float = 1.0,
                 no_repeat_ngram_size: int = 0, devices: int | str | list[str] | None = None,
                 static_cache: bool = False, packed: bool | str = "auto", prefill_tokens: int = 131072,
                 max_rows: int = 1024, decode_kernel: str = "auto", prefill_kernel: str = "varlen",
                 memory_fraction: float = 0.75) -> None:
        super().__init__(model)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if repetition_penalty <= 0 or no_repeat_ngram_size < 0:
            raise ConfigError(f"repetition_penalty must be > 0 (1 = off) and no_repeat_ngram_size >= 0 (0 = off), "
                              f"got {repetition_penalty} and {no_repeat_ngram_size}")
        self.repetition_penalty = float(repetition_penalty)
        self.no_repeat_ngram_size = int(no_repeat_ngram_size)
        if not isinstance(static_cache, bool):
            raise ConfigError(f"static_cache must be true or false, got {static_cache!r}")
        self.static_cache = static_cache
        if packed not in (True, False, "auto"):
            raise ConfigError(f"packed must be true, false or auto, got {packed!r}")
        if prefill_tokens < 1 or max_rows < 1:
            raise ConfigError(f"prefill_tokens and max_rows must be >= 1, got {prefill_tokens} and {max_rows}")
        self.prefill_tokens, self.max_rows = int(prefill_tokens), int(max_rows)
        if not 0 < memory_fraction <= 1:
            raise ConfigError(f"memory_fraction must be in (0, 1], got {memory_fraction}")
        self.memory_fraction = float(memory_fraction)
        if decode_kernel != "auto" and decode_kernel not in DECODE_KERNELS:
            raise ConfigError(f"decode_kernel must be auto or one of {', '.join(DECODE_KERNELS)}, got {decode_kernel!r}")
        self.decode_kernel = decode_kernel
        if prefill_kernel not in PREFILL_KERNELS:
            raise ConfigError(f"prefill_kernel must be one of {', '.join(PREFILL_KERNELS)}, got {prefill_kernel!r}")
        self.prefill_kernel = prefill_kernel
        self.path = Path(resolve_model_path(model))
        if not (self.path / "config.json").is_file():
            raise PathNotFound(
                f"model {model!r}: {self.path} is not a local transformers folder with config.json "
                "(hub downloads are not attempted; give a local folder or 'smollm2-135m-instruct')"
            )
        self.device = _pick_device(device)
        self.dtype = _pick_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.max_input_tokens = max_input_tokens
        self._model: Any = None
        self._tokenizer: Any = None
        self._replica_devices: list[str] = []
        if devices is not None:
            from ctxsynth.llm.replicas import expand_devices

            self._replica_devices = expand_devices(devices, device)
            self.device = self._replica_devices[0]
            self.dtype = _pick_dtype(dtype, self.device)
        # the packed path (ctxsynth.llm.hf_packed): `auto` (the default) = on CUDA only, unless static_cache is asked for
        self.packed = packed is True or (packed == "auto" and self.device.startswith("cuda") and not static_cache)
        if self.packed and static_cache:
            raise ConfigError("packed and static_cache are two decoding paths: set one of them")
        self._packed: Any = None
        self._encode_s = 0.0  # time spent turning requests into token ids (packed_stats' encode_s)
        self._replica_kwargs = {"model": model, "dtype": dtype, "batch_size": batch_size,
                                "max_input_tokens": max_input_tokens, "repetition_penalty": repetition_penalty,
                                "no_repeat_ngram_size": no_repeat_ngram_size, "static_cache": static_cache,
                                "packed": packed, "prefill_tokens": prefill_tokens, "max_rows": max_rows,
                                "decode_kernel": decode_kernel, "prefill_kernel": prefill_kernel,
                                "memory_fraction": memory_fraction}

    def identity(self) -> dict[str, Any]:
        config = hashlib.sha256((self.path / "config.json").read_bytes()).hexdigest()[:16]
        return {"backend": self.name, "model": self.path.name, "config_sha256": config,
                "weights": weights_fingerprint(self.path), "dtype": str(self.dtype).removeprefix("torch."),
                **self._decoding()}

    def _decoding(self) -> dict[str, Any]:
        """The decoding options that are on (left out when off, so cache keys without them stay)."""
        on = {"repetition_penalty": self.repetition_penalty != 1.0, "no_repeat_ngram_size": self.no_repeat_ngram_size > 0,
              "static_cache": self.static_cache, "packed": self.packed}
        out = {k: getattr(self, k) for k, v in on.items() if v}
        if self.packed:  # the decoding kernel rounds its own way in bf16
            auto = CUDA_DECODE_KERNEL if self.device.startswith("cuda") else "sdpa"
            out["decode_kernel"] = auto if self.decode_kernel == "auto" else self.decode_kernel
            if self.prefill_kernel != "varlen":  # left out at the default: the cache keys before it stay
                out["prefill_kernel"] = self.prefill_kernel
        return out

    def _load(self) -> None:
        if len(self._replica_devices) > 1:
            self._start_replicas()
            return
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("loading %s on %s (%s, %d CPU threads)", self.path, self.device, self.dtype,
                 torch.get_num_threads())
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=self.dtype, local_files_only=True)
        self._model = model.to(self.device).eval()
        if not getattr(self._tokenizer, "chat_template", None):
            log.warning("%s has no chat template: messages are joined as plain text", self.path.name)

    @property
    def hf_model(self) -> Any:
        """The loaded transformers model (None before the first request or load(), and with `devices`)."""
        return self._model

    @property
    def context_window(self) -> int | None:
        """The longest prompt this backend takes: max_input_tokens, else the model's window."""
        self._load()
        config = self._config if self._pool is not None else self._model.config
        return self.max_input_tokens or getattr(config, "max_position_embeddings", None)

    def load(self) -> None:
        """Load the model now (in every replica with `devices`) instead of at the first request."""
        self._load()

    def _start_replicas(self) -> None:
        """Data-parallel mode: the tokenizer and config here, the models in the replica processes."""
        if self._pool is not None and self._pool.alive:
            return
        from transformers import AutoConfig, AutoTokenizer

        from ctxsynth.llm.replicas import ReplicaPool

        self._tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self._config = AutoConfig.from_pretrained(str(self.path), local_files_only=True)
        self._pool = ReplicaPool(self._replica_devices, TransformersBackend, self._replica_kwargs)

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        if not requests:
            return []
        self._load()
        results: list[ChatResult | None] = [None] * len(requests)

        def finish(i: int, result: ChatResult) -> None:
            results[i] = result
            if on_result:
                on_result(i, result)

        t0 = time.perf_counter()
        prompts, errors = hf_prompts.encode_all(self._tokenizer, requests, self._input_limit())
        self._encode_s += time.perf_counter() - t0
        for i, error in errors.items():  # a bad request fails alone
            finish(i, ChatResult(None, None, error=error))
        order = sorted(prompts, key=lambda i: (len(prompts[i]), i))
        if self._pool is not None:
            batches = [order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)]
            work = [(n, [requests[i] for i in b], [prompts[i] for i in b]) for n, b in enumerate(batches)]

            def finish_batch(n: int, out: list[ChatResult]) -> None:
                for i, result in zip(batches[n], out, strict=True):
                    finish(i, result)

            self._pool.run(work, finish_batch)
            return [r if r is not None else ChatResult(None, None, error="no result") for r in results]
        if self.packed and self._packed_applies():
            self._generate_packed(requests, prompts, order, finish)
            return [r if r is not None else ChatResult(None, None, error="no result") for r in results]
        start = 0
        while start < len(order):
            batch = order[start:start + self.batch_size]  # batch_size can shrink on out-of-memory
            for i, result in zip(batch, self._run_isolated(requests, prompts, batch), strict=True):
                finish(i, result)
            start += len(batch)
        return [r if r is not None else ChatResult(None, None, error="no result") for r in results]

    def encode_prompt(self, request: ChatRequest) -> list[int]:
        """The token ids the model reads for this request (chat template applied, generation prompt
        added); raises ValueError when the prompt is over the input limit."""
        self._load()
        return self._encode(request)

    def _encode(self, request: ChatRequest) -> list[int]:
        return hf_prompts.encode(self._tokenizer, request, self._input_limit())

    def _input_limit(self) -> int | None:
        return self.max_input_tokens or getattr(self._config if self._pool is not None else self._model.config,
                                                "max_position_embeddings", None)

    def run_batch(self, requests: Sequence[ChatRequest], prompts: Sequence[list[int]]) -> list[ChatResult]:
        """Generate one batch of already encoded prompts (a replica's unit of work), failures isolated."""
        return self._run_isolated(requests, dict(enumerate(prompts)), list(range(len(requests))))

    def _run_isolated(self, requests: Sequence[ChatRequest], prompts: dict[int, list[int]],
                      batch: list[int]) -> list[ChatResult]:
        """Generate one batch. Out of memory: halve it (and the batch size from then on) until it
        fits. Any other failure: retry its requests one by one so only the bad ones fail. Results
        do not depend on the split (per-request seeds, see the module docstring)."""
        if self.packed and self._packed_applies():  # a replica's batch: the packed path plans its own waves
            out: dict[int, ChatResult] = {}
            self._generate_packed(requests, prompts, batch, out.__setitem__)
            return [out[i] for i in batch]
        try:
            return self._generate_batch([requests[i] for i in batch], [prompts[i] for i in batch])
        except Exception as exc:
            if not is_out_of_memory(exc):  # torch's OutOfMemoryError, or CUDA's OOM at a kernel launch
                log.warning("batch of %d failed (%s: %s)", len(batch), type(exc).__name__, exc)
                if len(batch) == 1:
                    return [ChatResult(None, None, error=f"generation: {type(exc).__name__}: {exc}")]
                return [self._run_isolated(requests, prompts, [i])[0] for i in batch]
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            if len(batch) == 1:
                return [ChatResult(None, None, error=f"generation: out of memory with batch 1: {exc}")]
            half = (len(batch) + 1) // 2
            if half < self.batch_size:
                log.warning("out of memory with a batch of %d: batch_size %d -> %d", len(batch), self.batch_size, half)
                self.batch_size = half
            return self._run_isolated(requests, prompts, batch[:half]) + self._run_isolated(requests, prompts, batch[half:])

    def _generate_batch(self, requests: Sequence[ChatRequest], prompts: Sequence[list[int]]) -> list[ChatResult]:
        """Left-padded generation of one batch; one result per request, in the given order."""
        params = [r.params for r in requests]
        budgets = [p.max_tokens for p in params]
        generated = generate_padded(
            self._model, prompts, budgets, [request_seed(r) for r in requests], [p.temperature for p in params],
            [p.top_p for p in params], eos_ids=self._eos_ids(), pad_id=self._pad_id(),
            repetition_penalty=self.repetition_penalty, no_repeat_ngram_size=self.no_repeat_ngram_size,
            static_cache_rows=self.batch_size if self.static_cache else None)
        return [self._decode(t, b, len(ids)) for t, b, ids in zip(generated, budgets, prompts, strict=True)]

    def _decode(self, tokens: list[int], budget: int, prompt_tokens: int) -> ChatResult:
        eos = set(self._eos_ids())
        tokens = tokens[:budget]
        stop = next((k for k, t in enumerate(tokens) if t in eos), None)
        kept = tokens if stop is None else tokens[:stop]
        text = self._tokenizer.decode(kept, skip_special_tokens=True)
        used = len(tokens) if stop is None else stop + 1  # the end token counts as generated
        return ChatResult(text=text, finish_reason="length" if stop is None else "stop",
                          usage={"prompt_tokens": prompt_tokens, "completion_tokens": used})

    def _eos_ids(self) -> list[int]:
        ids = self._model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self._tokenizer.eos_token_id is not None and self._tokenizer.eos_token_id not in ids:
            ids.append(self._tokenizer.eos_token_id)
        return ids

    def _pad_id(self) -> int:
        if self._tokenizer.pad_token_id is not None:
            return int(self._tokenizer.pad_token_id)
        return self._eos_ids()[0]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._model = None
        self._tokenizer = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def _pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _pick_dtype(dtype: str, device: str) -> torch.dtype:
    return getattr(torch, pick_dtype(dtype, device))


