"""Data-parallel generation: one `transformers` model replica per device, each in its own process.

The parent (TransformersBackend with `devices`) tokenizes, sorts and cuts the requests into
batches exactly as one replica would, and puts whole batches on a shared queue; each worker
process holds a model on one device (cuda:0, cuda:1, ... or cpu) and takes the next batch when it
is free. A batch is never split or merged across replicas, and sampling noise is seeded per
request (hf_backend's RowGumbelSampler), so which replica runs a batch does not change its text:
N replicas give the same outputs as one, on the same kind of device. Only an out-of-memory
retry, which halves a batch inside its worker, changes the batch composition (as it does on one).

Workers are started with the `spawn` method (CUDA cannot be used in a forked child) and load the
model once; `close()` stops them. If a worker process dies, the batches not yet returned fail
(error results, as any failed request) and the pool is closed.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
from collections.abc import Callable, Sequence
from typing import Any

from ctxsynth.errors import ConfigError
from ctxsynth.llm.base import ChatRequest, ChatResult

log = logging.getLogger(__name__)

Batch = tuple[int, list[ChatRequest], list[list[int]]]  # (batch number, requests, their prompt ids)
_POLL_S = 5.0


def expand_devices(devices: int | str | Sequence[str], default: str) -> list[str]:
    """The replica devices: a count (n replicas: cuda:0..n-1 on CUDA, n x cpu on CPU), "all" (every
    visible GPU) or an explicit list such as ["cuda:0", "cuda:1"]."""
    import torch

    base = "cuda" if default == "auto" and torch.cuda.is_available() else default.split(":")[0]
    if base == "auto":
        base = "cpu"
    if devices == "all":
        if not torch.cuda.is_available():
            raise ConfigError("devices: 'all' asks for every GPU, but torch sees no CUDA device")
        devices = torch.cuda.device_count()
    if isinstance(devices, str):
        devices = int(devices) if devices.isdigit() else [devices]
    if isinstance(devices, int):
        if devices < 1:
            raise ConfigError(f"devices must be >= 1, got {devices}")
        if base == "cuda" and devices > torch.cuda.device_count():
            raise ConfigError(f"devices: {devices} replicas asked for, but torch sees "
                              f"{torch.cuda.device_count()} GPU(s)")
        return [f"cuda:{i}" for i in range(devices)] if base == "cuda" else ["cpu"] * devices
    out = [str(d) for d in devices]
    if not out:
        raise ConfigError("devices: the list is empty")
    return out


def _worker(backend_class: Any, device: str, kwargs: dict[str, Any], tasks: Any, results: Any,
            cpu_threads: int) -> None:
    """One replica: load the model on `device`, then run batches until the None sentinel."""
    import torch

    if device == "cpu" and cpu_threads > 0:
        torch.set_num_threads(cpu_threads)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    backend = backend_class(device=device, **kwargs)
    try:
        backend.load()
        results.put(("ready", device, None))
    except Exception as exc:  # reported to the parent, which fails the run with it
        results.put(("dead", device, f"{type(exc).__name__}: {exc}"))
        return
    parent = os.getppid()
    while (task := _next_task(tasks, parent)) is not None:
        number, requests, prompts = task
        try:
            out = backend.run_batch(requests, prompts)
        except Exception as exc:  # run_batch already isolates request failures; this is a last guard
            out = [ChatResult(None, None, error=f"generation: {type(exc).__name__}: {exc}") for _ in requests]
        results.put(("batch", number, out))
    backend.close()


def _next_task(tasks: Any, parent: int) -> Batch | None:
    """The next batch; None on the stop sentinel or when the parent process is gone (killed)."""
    while True:
        try:
            task: Batch | None = tasks.get(timeout=_POLL_S)
            return task
        except queue.Empty:
            if os.getppid() != parent:
                return None


class ReplicaPool:
    """Worker processes, one model replica each; `run` sends batches and collects their results."""

    def __init__(self, devices: Sequence[str], backend_class: Any, backend_kwargs: dict[str, Any]) -> None:
        """`backend_class(device=..., **backend_kwargs)` builds each replica's backend (in its process);
        it needs `load()` and `run_batch(requests, prompts)`."""
        self.devices = list(devices)
        self._procs: list[Any] = []
        ctx = mp.get_context("spawn")
        self._tasks = ctx.Queue()
        self._results = ctx.Queue()
        threads = max(1, (os.cpu_count() or 1) // len(self.devices))
        self._procs = [ctx.Process(target=_worker, args=(backend_class, d, backend_kwargs, self._tasks, self._results,
                                                         threads),
                                   daemon=True, name=f"ctxsynth-replica-{i}") for i, d in enumerate(self.devices)]
        for p in self._procs:
            p.start()
        self._wait_ready()
        log.info("%d generation replicas ready on %s", len(self._procs), ", ".join(self.devices))

    @property
    def alive(self) -> bool:
        return bool(self._procs) and all(p.is_alive() for p in self._procs)

    def _wait_ready(self) -> None:
        ready = 0
        while ready < len(self._procs):
            kind, device, error = self._next()
            if kind == "dead":
                self.close()
                raise RuntimeError(f"generation replica on {device} failed to load the model: {error}")
            ready += kind == "ready"

    def _next(self) -> tuple[str, Any, Any]:
        while True:
            try:
                item: tuple[str, Any, Any] = self._results.get(timeout=_POLL_S)
                return item
            except queue.Empty:
                dead = [p.name for p in self._procs if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"generation replica process(es) {dead} exited unexpectedly") from None

    def run(self, batches: Sequence[Batch], on_batch: Callable[[int, list[ChatResult]], None]) -> None:
        """Queue every batch; call on_batch(batch number, results) as each comes back (any order)."""
        for batch in batches:
            self._tasks.put(batch)
        pending = {number: len(requests) for number, requests, _ in batches}
        while pending:
            try:
                kind, number, out = self._next()
            except RuntimeError as exc:
                log.error("%s: failing %d pending batches", exc, len(pending))
                self.close()
                for number, size in sorted(pending.items()):
                    on_batch(number, [ChatResult(None, None, error=f"generation: {exc}") for _ in range(size)])
                return
            if kind == "batch" and number in pending:
                del pending[number]
                on_batch(number, out)

    def close(self) -> None:
        for p in self._procs:
            if p.is_alive():
                self._tasks.put(None)
        for p in self._procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        self._procs = []
