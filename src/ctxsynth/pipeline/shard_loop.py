"""The driver loop of a sharded stage: hand the unfinished shards to the run's executor, at most
`parallel` at a time, retry the failed ones, and stop on a user error.

A shard that raised anything but a `UserError`, or whose worker died, goes back to the queue until it
has failed `shard_retries + 1` times; then the stage stops with that error. A `UserError` (bad input,
`BackendUnavailable`, a spend limit) or a resource error (a full disk, a missing permission, a
read-only file system: ctxsynth.io.resource_error) is not retried: no new shard starts, the ones running finish
(and are marked), and the error is raised with the stage left incomplete. When a local worker dies,
the pool is rebuilt and every shard that was running in it counts one failed try.
"""

from __future__ import annotations

import logging
import queue as queue_module
import threading
import uuid
from collections import Counter, deque
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Protocol

from ctxsynth.errors import UserError
from ctxsynth.io import resource_error
from ctxsynth.pipeline.executors import Executor, ShardFunction, close_worker_resources, worker_died
from ctxsynth.progress import NullProgress, Progress

if TYPE_CHECKING:
    from ctxsynth.pipeline.run import Run

log = logging.getLogger(__name__)


class ParallelWork(Protocol):
    """What the loop asks of a stage's work (ctxsynth.pipeline.contract.ShardWork, which imports
    this module, implements it): how many shards may run at once, and the work told that number."""

    def max_parallel(self, run: Run, workers: int) -> int: ...

    def for_parallel(self, parallel: int) -> ParallelWork: ...


class QueueProgress:
    """A worker's Progress: each advance and added total goes to the driver through a manager queue
    (picklable to spawned workers), tagged with the shard, so the bar moves per answer, not per
    finished shard, and a failed try's counts can be taken back."""

    def __init__(self, events: Any, shard: int = -1) -> None:
        self.events = events
        self.shard = shard

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        self.events.put(("advance", n, self.shard))

    def add_total(self, n: int) -> None:
        self.events.put(("add_total", n, self.shard))

    def finish(self) -> None:
        pass


class _Tally:
    """What one shard's tries have moved the bar by, so a failed try can take it back (its retry
    counts every answer again, from the request cache)."""

    def __init__(self) -> None:
        self.counts: dict[int, list[int]] = {}

    def count(self, shard: int, kind: str, n: int) -> None:
        self.counts.setdefault(shard, [0, 0])[0 if kind == "advance" else 1] += n

    def take_back(self, shard: int, progress: Progress) -> None:
        advanced, added = self.counts.pop(shard, [0, 0])
        if advanced:
            progress.advance(-advanced)
        if added:
            progress.add_total(-added)


class CountedProgress:
    """An in-process shard's Progress: passes everything on and tallies it per shard."""

    def __init__(self, progress: Progress, tally: _Tally, shard: int) -> None:
        self.progress, self.tally, self.shard = progress, tally, shard

    def start(self, description: str, total: int) -> None:
        self.progress.start(description, total)

    def advance(self, n: int = 1) -> None:
        self.tally.count(self.shard, "advance", n)
        self.progress.advance(n)

    def add_total(self, n: int) -> None:
        self.tally.count(self.shard, "add_total", n)
        self.progress.add_total(n)

    def finish(self) -> None:
        self.progress.finish()


class ProgressRelay:
    """The driver side: a thread that hands the workers' progress events to the stage's bar. A
    shard's failed try is taken back by a marker put on the same queue after the try has ended, so
    every event of that try is counted before it is taken back."""

    def __init__(self, progress: Progress) -> None:
        import multiprocessing

        self.progress = progress
        self.tally = _Tally()
        self._manager = multiprocessing.get_context("spawn").Manager()
        self.events = self._manager.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, daemon=True, name="progress-relay")
        self._thread.start()

    def _relay(self) -> None:
        while True:
            try:
                kind, n, shard = self.events.get(timeout=0.2)
            except queue_module.Empty:
                if self._stop.is_set():
                    return
                continue
            except (EOFError, OSError):  # the manager is gone
                return
            if kind == "take_back":
                self.tally.take_back(shard, self.progress)
                continue
            self.tally.count(shard, kind, n)
            getattr(self.progress, kind)(n)

    def take_back(self, shard: int) -> None:
        self.events.put(("take_back", 0, shard))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._manager.shutdown()


class ShardDriver:
    """The driver side of one stage invocation: the queue, the shards running, the tries of each."""

    def __init__(self, run: Run, stage: str, todo: list[int], work: ParallelWork, progress: Progress,
                 shard_function: ShardFunction) -> None:
        self.run, self.stage, self.work, self.progress = run, stage, work, progress
        self.shard_function = shard_function
        # one shard left: no worker to start for it
        self.executor: Executor = run.executor() if len(todo) > 1 else Executor()
        self.in_process = self.executor.in_process()
        workers = 1 if self.in_process else self.executor.workers
        self.parallel = max(1, min(workers, work.max_parallel(run, workers)))
        self.work = work.for_parallel(self.parallel)
        self.queue: deque[int] = deque(todo)
        self.running: dict[Any, int] = {}
        self.tries: Counter[int] = Counter()
        self.fatal: BaseException | None = None
        self.session = uuid.uuid4().hex
        # local workers report each answer through a relay; elsewhere a shard counts when it ends
        self.relay = ProgressRelay(progress) if self.executor.kind == "local" and \
            not isinstance(progress, NullProgress) else None
        self.tally = _Tally()  # in-process tries

    def shard_progress(self, i: int) -> Progress | None:
        """The Progress a try of shard i reports to (None: the shard counts when it ends)."""
        if self.in_process:
            return CountedProgress(self.progress, self.tally, i)
        return QueueProgress(self.relay.events, i) if self.relay is not None else None

    def take_back(self, i: int) -> None:
        """A failed try of shard i: what it moved the bar by comes off again."""
        if self.in_process:
            self.tally.take_back(i, self.progress)
        elif self.relay is not None:
            self.relay.take_back(i)

    def submit_ready(self) -> None:
        while self.queue and self.fatal is None and len(self.running) < self.parallel:
            i = self.queue.popleft()
            args = (self.run.config, str(self.run.base_dir), self.stage, self.work, i, self.session,
                    self.shard_progress(i))
            self.running[self.executor.submit(self.shard_function, *args)] = i

    def settle(self, handle: Any) -> bool:
        """Read one finished shard; True when its worker died (the local pool must be rebuilt)."""
        i = self.running.pop(handle)
        try:
            stats = self.executor.outcome(handle)
        except UserError as exc:
            self.fatal = self.fatal or exc
            return False
        except Exception as exc:
            if (resource := resource_error(exc)) is not None:  # a retry would meet the same full disk
                self.fatal = self.fatal or resource
                return False
            self.tries[i] += 1
            self.take_back(i)
            died = worker_died(exc)
            if self.tries[i] > self.run.config.shard_retries:
                self.fatal = self.fatal or exc
            else:
                what = "its worker died" if died else f"{type(exc).__name__}: {exc}"
                log.warning("%s: shard %d failed (%s); trying again (%d of %d)", self.stage, i, what,
                            self.tries[i], self.run.config.shard_retries)
                self.queue.append(i)
            return isinstance(exc, BrokenProcessPool)
        if not self.in_process and self.relay is None:
            self.progress.advance(int(stats.get("n_in", 0)))
        return False

    def drive(self) -> None:
        while True:
            self.submit_ready()
            if not self.running:
                break
            broken = False
            for handle in self.executor.wait(list(self.running)):
                broken = self.settle(handle) or broken
            if broken:  # every other shard of the broken pool failed with it
                for handle in list(self.running):
                    self.settle(handle)
                self.executor.reset()
        if self.fatal is not None:
            raise self.fatal


def run_shards(run: Run, stage: str, todo: list[int], work: ParallelWork, progress: Progress,
               shard_function: ShardFunction) -> None:
    """Run the shards `todo` of `stage`: `shard_function(config, base_dir, stage, work, index, session,
    progress)` works on one, writes and marks it (ctxsynth.pipeline.contract.execute_shard); see the
    module docstring."""
    if not todo:
        return
    loop = ShardDriver(run, stage, todo, work, progress, shard_function)
    log.info("%s: %d shard(s) on the %s executor, %d at a time", stage, len(todo), loop.executor.kind,
             loop.parallel)
    try:
        loop.drive()
    finally:
        if loop.relay is not None:
            loop.relay.close()
        if loop.in_process:
            close_worker_resources()
