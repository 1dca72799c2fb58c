"""Executors: where the shards of a stage run. `serial` (this process, one shard after another),
`local` (worker processes on this machine) and `ray` (Ray tasks, on a local Ray started for the run
or on an existing cluster).

The contract a stage body follows is ctxsynth.pipeline.contract; the driver loop that hands shards
to an executor is ctxsynth.pipeline.shard_loop; `build_executor` picks one by name from `EXECUTORS`.

Every executor gives the same guarantees, because they live in the shard function and the driver
loop, not here: a shard's files and marker are written before the driver hears of it (kill -9 at
any moment leaves complete shards or none; the rerun skips marked ones); a shard that raised
anything but a `UserError`, or whose worker died, is run again up to `shard_retries` times; a
`UserError` (bad input, `BackendUnavailable`, a spend limit) stops the stage after the shards
already running finish, with the stage left incomplete; the request cache is one SQLite file in WAL
mode shared by every process (each answer is committed on arrival). Output bytes do not depend on
the executor or the worker count (randomness is per record).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal

from ctxsynth.errors import ConfigError
from ctxsynth.registry import Registry

log = logging.getLogger(__name__)

ExecutorKind = Literal["serial", "local", "ray"]
ShardFunction = Callable[..., Any]  # a top-level (picklable) function


@dataclass
class RayConfig:
    address: str | None = None  # an existing cluster ("auto", "ray://host:10001", "host:6379"); None: start one
    num_cpus: int | None = None  # CPUs of the local Ray started for the run (None: all of this machine)


# --- per-process resources -------------------------------------------------------------------------

_RESOURCES: dict[str, Any] = {}
_RESOURCES_LOCK = threading.Lock()
_SESSION: list[str] = [""]  # the stage invocation whose resources this process holds


def enter_session(session: str) -> None:
    """Called before each shard: a new stage invocation closes the resources of the previous one, so
    a long-lived worker (a Ray worker serves many runs) never writes through a stale backend."""
    if _SESSION[0] != session:
        close_worker_resources()
        _SESSION[0] = session


def worker_resource(key: str, factory: Callable[[], Any]) -> Any:
    """The process's resource under `key`, built by `factory` on first use (a backend, a tokenizer)."""
    with _RESOURCES_LOCK:
        if key not in _RESOURCES:
            _RESOURCES[key] = factory()
        return _RESOURCES[key]


def close_worker_resources(prefix: str = "") -> None:
    """Close (when they have `close`) and forget the resources whose key starts with `prefix`."""
    with _RESOURCES_LOCK:
        keys = [k for k in _RESOURCES if k.startswith(prefix)]
        items = [_RESOURCES.pop(k) for k in keys]
    for item in items:
        close = getattr(item, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # a resource that fails to close must not hide the stage's result
                log.exception("closing a worker resource failed")


def _log_levels() -> dict[str, int]:
    """The driver's logging levels (root and every logger set explicitly), for the workers."""
    levels = {"": logging.getLogger().level}
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


def _worker_logging(levels: dict[str, int]) -> None:
    """A worker logs as the driver does (its level, its quiet libraries, credentials redacted) to the
    shared stderr: `-v` shows each worker's request, retry and hedge counts, as the serial executor does."""
    from ctxsynth.llm.spec import RedactCredentials

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactCredentials())
    logging.basicConfig(level=levels.get("", logging.WARNING), handlers=[handler], force=True)
    for name, level in levels.items():
        if name:
            logging.getLogger(name).setLevel(level)


def _init_worker(driver: int, levels: dict[str, int] | None = None) -> None:
    """Worker start-up: die with the driver (a kill -9 of the run must not leave workers sending
    requests and writing shards behind the rerun's back), close the resources on exit
    (multiprocessing skips atexit), and log as the driver does."""
    from multiprocessing import util

    if levels is not None:
        _worker_logging(levels)

    util.Finalize(None, close_worker_resources, exitpriority=10)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != driver:  # the driver died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_driver, args=(driver,), daemon=True, name="driver-watch").start()


def _watch_driver(driver: int) -> None:
    """Elsewhere than Linux (no PDEATHSIG): exit within a second of the driver's death."""
    while os.getppid() == driver:
        time.sleep(1.0)
    os._exit(1)


def share_of_limit(limit: int, parallel: int) -> int:
    """Each of `parallel` concurrent shards gets limit // parallel (at least 1); callers cap
    `parallel` at `limit`, so the shares never add up to more than the limit."""
    return max(1, limit // max(1, parallel))


# --- executors ---------------------------------------------------------------------------------------


class Executor:
    """Submit a top-level function; wait for any of the submitted ones; read an outcome."""

    kind: str = "serial"
    workers: int = 1

    def submit(self, fn: ShardFunction, *args: Any) -> Any:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # handed to the caller through the future (Ctrl-C is not caught)
            future.set_exception(exc)
        return future

    def wait(self, pending: Iterable[Any]) -> set[Any]:
        """At least one finished handle among `pending`."""
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        return set(done)

    def outcome(self, handle: Any) -> Any:
        """The function's return value; raises what it raised (or a worker's death)."""
        return handle.result()

    def in_process(self) -> bool:
        return True

    def reset(self) -> None:
        """After a worker died: make the executor usable again."""

    def close(self) -> None:
        pass


class LocalExecutor(Executor):
    """A pool of `workers` spawned processes (spawn: no fork of a driver holding threads or models)."""

    kind = "local"

    def __init__(self, workers: int) -> None:
        self.workers = workers or (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(os.getpid(), _log_levels()))
        return self._pool

    def submit(self, fn: ShardFunction, *args: Any) -> Any:
        return self._get_pool().submit(fn, *args)

    def in_process(self) -> bool:
        return False

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def worker_died(exc: BaseException) -> bool:
    """Whether `exc` says the worker process died (killed, out of memory) rather than the work failing."""
    if isinstance(exc, BrokenProcessPool):
        return True
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"WorkerCrashedError", "NodeDiedError", "RayActorError", "LocalRayletDiedError"})


def local_executor(workers: int, ray: RayConfig) -> Executor:
    return LocalExecutor(workers)


# `executor:` name -> factory(workers, ray config); Ray's is imported (by name) only when chosen
EXECUTORS = Registry("executor")
EXECUTORS.register("serial", lambda workers, ray: Executor())
EXECUTORS.register("local", local_executor)
EXECUTORS.register("ray", "ctxsynth.pipeline.ray_executor:ray_executor")


def build_executor(kind: str, workers: int, ray: RayConfig) -> Executor:
    """The executor named by the run's `executor:` key."""
    if kind not in EXECUTORS:
        raise ConfigError(f"executor: unknown {kind!r}; choose {', '.join(EXECUTORS.in_order())}")
    return EXECUTORS.get(kind)(workers, ray)  # type: ignore[no-any-return]
