"""The `ray` executor: every shard is one Ray task (one CPU), on a local Ray started for the run or on
an existing cluster (`ray.address`). See ctxsynth.pipeline.executors for the contract every executor keeps.

Ray's own task retries are off (`max_retries=0`): a failed shard is retried by the driver loop in
ctxsynth.pipeline.shard_loop, the same way as in the other executors, so `shard_retries` means the
same everywhere. A task returns its exception as a value instead of raising it, so the driver sees
the original error (a `BackendUnavailable` stays one) rather than Ray's wrapper.

Ray workers import ctxsynth themselves: on a cluster, install the same ctxsynth version on every
node; the run directory must be on a path every node sees (a shared file system), since workers
write the shard files and markers there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ctxsynth.errors import MissingDependency
from ctxsynth.pipeline.executors import Executor, RayConfig, ShardFunction

log = logging.getLogger(__name__)


class _Raised:
    """An exception carried back as a value (see the module docstring)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _call(fn: ShardFunction, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        return _Raised(exc)


class RayExecutor(Executor):
    kind = "ray"

    def __init__(self, config: RayConfig, workers: int = 0) -> None:
        try:
            import ray
        except ImportError:
            raise MissingDependency("executor: ray needs Ray: pip install 'ctxsynth[ray]'") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if config.address:
                ray.init(address=config.address, log_to_driver=False)
            else:
                ray.init(num_cpus=config.num_cpus, include_dashboard=False, log_to_driver=False)
                self._started = True
            log.info("ray: connected to %s", config.address or "a local Ray started for this run")
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, cpus)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_call)

    def submit(self, fn: ShardFunction, *args: Any) -> Any:
        return self._remote.remote(fn, *args)

    def wait(self, pending: Iterable[Any]) -> set[Any]:
        done, _ = self._ray.wait(list(pending), num_returns=1)
        return set(done)

    def outcome(self, handle: Any) -> Any:
        value = self._ray.get(handle)
        if isinstance(value, _Raised):
            raise value.exc
        return value

    def in_process(self) -> bool:
        return False

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False


def ray_executor(workers: int, ray: RayConfig) -> Executor:
    """`executor: ray` (ctxsynth.pipeline.executors.EXECUTORS)."""
    return RayExecutor(ray, workers)
