"""Executors (serial, local worker processes): the same bytes in every executor, API limits that
hold across workers (counted by the real test server), retries of failed shards and dead workers,
user errors that stop a stage, and one request cache written by several processes at once."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctxsynth import config as cfg
from ctxsynth.errors import InputError
from ctxsynth.io import shard_files
from ctxsynth.llm.base import ChatResult
from ctxsynth.llm.cache import RequestCache
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.contract import ShardOutput, ShardWork, run_sharded
from ctxsynth.pipeline.run import Run, run_all, run_stage
from ctxsynth.progress import Progress
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer, prompt_fields
from ctxsynth.testing.scripting import Reply

N_SEEDS = 24


def write_seeds(path: Path, n: int = N_SEEDS) -> None:
    rows = [{"id": f"s{i:03d}", "instruction": f"Who founded settlement number {i}?", "answer": f"Founder {i}",
             "task": "single_doc_qa"} for i in range(n)]
    rows.append({"id": "bad", "instruction": "", "answer": "x"})  # rejected by the seeds stage
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def flaky_writer(body: dict) -> Reply:
    """Refuses every third seed's first attempt, so regeneration (a new sampling seed) is exercised."""
    number = int(prompt_fields(body)["question"].rstrip("?").split()[-1])
    if number % 3 == 0 and body.get("seed", 0) % 2 == 0:
        return Reply("Context: I'm sorry, I cannot write that document for you.")
    return context_writer(body)


def slow_writer(body: dict) -> Reply:
    time.sleep(0.3)
    return context_writer(body)


def run_config(tmp_path: Path, url: str, name: str, *, shards: int = 4, executor: str = "local", workers: int = 2,
               max_concurrency: int = 4) -> RunConfig:
    return cfg.from_dict(RunConfig, {
        "name": name, "out_dir": str(tmp_path / "runs"), "seed": 7, "shards": shards, "executor": executor,
        "workers": workers, "stages": ["seeds", "synthesize"],
        "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl"), "on_error": "reject"},
        "llm": {"backend": "openai", "model": "test-model", "max_tokens": 512,
                "options": {"base_url": url, "max_concurrency": max_concurrency, "backoff_base_s": 0.01}},
        "synth": {"target_words": 80, "max_attempts": 3},
    })


def stage_bytes(run_dir: Path, stage: str) -> bytes:
    return b"".join(gzip.decompress(p.read_bytes()) for p in shard_files(run_dir / stage))


def run_dirs(tmp_path: Path, url: str, variants: dict[str, dict]) -> dict[str, Path]:
    dirs = {}
    for name, kwargs in variants.items():
        run = Run(run_config(tmp_path, url, name, **kwargs))
        run.prepare()
        run_all(run)
        dirs[name] = run.dir
    return dirs


def test_serial_and_local_executors_write_the_same_bytes_as_one_shard(tmp_path: Path) -> None:
    write_seeds(tmp_path / "seeds.jsonl")
    with OpenAIServer(flaky_writer) as server:
        dirs = run_dirs(tmp_path, server.url, {"one": {"shards": 1, "executor": "serial"},
                                               "serial": {"executor": "serial"}, "local": {"executor": "local"}})
    assert len(shard_files(dirs["local"] / "synth")) == 4
    for stage in ("seeds", "seeds/rejected", "synth", "synth/rejected"):
        reference = stage_bytes(dirs["one"], stage)
        assert reference, stage
        assert stage_bytes(dirs["serial"], stage) == reference, stage
        assert stage_bytes(dirs["local"], stage) == reference, stage
    kept = stage_bytes(dirs["local"], "synth").decode().splitlines()
    assert len(kept) + len(stage_bytes(dirs["local"], "synth/rejected").decode().splitlines()) == N_SEEDS
    assert any(len(json.loads(line)["attempts"]) > 1 for line in kept)  # regenerated in a worker
    done = json.loads((dirs["local"] / "_state" / "synthesize" / "DONE").read_text())
    assert done["n_in"] == N_SEEDS and done["usage"]["requests_sent"] > N_SEEDS


@pytest.mark.parametrize(("limit", "workers"), [(4, 2), (1, 2)])
def test_max_concurrency_holds_across_workers(tmp_path: Path, limit: int, workers: int) -> None:
    """Counted by the server: requests in flight over all workers never exceed llm max_concurrency."""
    write_seeds(tmp_path / "seeds.jsonl")
    with OpenAIServer(slow_writer) as server:
        run_dirs(tmp_path, server.url, {"r": {"executor": "local", "workers": workers, "max_concurrency": limit}})
        peak = server.max_in_flight
    assert peak <= limit
    assert peak >= min(limit, 2)  # the workers did run side by side when the limit allows it


@dataclass(frozen=True)
class FailOnce(ShardWork):
    """Shard 1 fails on its first try: by raising, or by killing its own worker process."""

    flags: str
    how: str

    def run_shard(self, run: Run, index: int, progress: Progress) -> ShardOutput:
        flag = Path(self.flags) / f"tried-{index}"
        first = not flag.exists()
        flag.write_text(str(os.getpid()))
        if index == 1 and first:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.how == "user":
                raise InputError("shard 1 has bad input")
            raise RuntimeError("transient failure")
        return ShardOutput([{"i": index, "pid": 0}], None)


def bare_run(tmp_path: Path, executor: str, retries: int = 1) -> Run:
    config = cfg.from_dict(RunConfig, {"name": "bare", "out_dir": str(tmp_path / "runs"), "executor": executor,
                                       "workers": 2, "shard_retries": retries})
    return Run(config)


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failed_shard_or_a_dead_worker_is_retried(tmp_path: Path, how: str) -> None:
    run = bare_run(tmp_path, "local")
    try:
        summary = run_sharded(run, "seeds", 3, FailOnce(str(tmp_path), how))
    finally:
        run.close_executor()
    assert summary["n_out"] == 3
    assert [json.loads(gzip.decompress(p.read_bytes()))["i"] for p in shard_files(run.stage_dir("seeds"))] == [0, 1, 2]


@dataclass(frozen=True)
class CountThenFailOnce(ShardWork):
    """Every shard reports 5 answers; shard 1's first try reports 3 and a retried verification
    (one more to do), then fails."""

    flags: str

    def run_shard(self, run: Run, index: int, progress: Progress) -> ShardOutput:
        flag = Path(self.flags) / f"tried-{index}"
        first = not flag.exists()
        flag.write_text("1")
        if index == 1 and first:
            progress.advance(3)
            progress.add_total(1)
            raise RuntimeError("transient failure")
        progress.advance(5)
        return ShardOutput([{"i": index}], None)


class Bar:
    """A Progress that keeps its numbers (thread-safe enough for one relay thread)."""

    def __init__(self) -> None:
        self.done, self.total = 0, 0

    def start(self, description: str, total: int) -> None:
        self.total = total

    def advance(self, n: int = 1) -> None:
        self.done += n

    def add_total(self, n: int) -> None:
        self.total += n

    def finish(self) -> None:
        pass


@pytest.mark.parametrize("executor", ["local", "serial"])
def test_a_retried_shard_is_counted_once_on_the_progress_bar(tmp_path: Path, executor: str) -> None:
    run = bare_run(tmp_path, executor)
    bar = Bar()
    try:
        run_sharded(run, "seeds", 3, CountThenFailOnce(str(tmp_path)), progress=bar)
    finally:
        run.close_executor()
    assert (tmp_path / "tried-1").exists()
    assert (bar.done, bar.total) == (15, 0)  # the failed try's 3 answers and added total were taken back


def test_retries_exhausted_leave_the_stage_incomplete(tmp_path: Path) -> None:
    run = bare_run(tmp_path, "local", retries=0)
    try:
        with pytest.raises(RuntimeError, match="transient failure"):
            run_sharded(run, "seeds", 3, FailOnce(str(tmp_path), "raise"))
    finally:
        run.close_executor()
    markers = run.markers("seeds")
    assert not markers.stage_done() and not markers.shard_done(1)


def test_a_user_error_stops_the_stage_without_retrying(tmp_path: Path) -> None:
    run = bare_run(tmp_path, "local", retries=3)
    try:
        with pytest.raises(InputError, match="shard 1 has bad input"):
            run_sharded(run, "seeds", 3, FailOnce(str(tmp_path), "user"))
    finally:
        run.close_executor()
    assert not run.markers("seeds").stage_done() and not run.markers("seeds").shard_done(1)
    assert (tmp_path / "tried-1").exists()
    # the rerun does only what is missing: shard 1 now passes
    rerun = bare_run(tmp_path, "serial")
    assert run_sharded(rerun, "seeds", 3, FailOnce(str(tmp_path), "user"))["n_out"] == 3


def _write_cache(path: str, worker: int, n: int) -> None:
    cache = RequestCache(Path(path))
    for i in range(n):
        cache.put(f"w{worker}-k{i}", {"worker": worker}, ChatResult(f"text {worker} {i}", "stop", {"prompt_tokens": i}))
    cache.close()


def test_request_cache_takes_concurrent_writers_from_several_processes(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    RequestCache(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_cache, args=(str(path), w, 300)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    cache = RequestCache(path)
    assert len(cache) == 1200
    hit = cache.get("w3-k299")
    assert hit is not None and hit.text == "text 3 299" and hit.usage == {"prompt_tokens": 299}


def test_to_dict_equals_dataclasses_asdict() -> None:
    """The fast record conversion (no deep copy of leaves) returns what dataclasses.asdict returns."""
    import dataclasses

    from ctxsynth.records import Attempt, Rejected, Seed, Synthesized, to_dict

    seed = Seed(id="a", task="t", instruction="Who?", answer=["x", "y"], meta={"k": [1, {"z": (1, 2.5)}]})
    attempt = Attempt(attempt=1, sampling_seed=3, text="t", finish_reason="stop", usage={"prompt_tokens": 1},
                      error=None, verdicts={"f": 0.5}, reason=None)
    record = Synthesized(id="a", task="t", seed=seed, context="c", provenance={"p": [1]}, verdicts={},
                         attempts=[attempt])
    rejected = Rejected("a", "s", "r", "d", {"seed": to_dict(seed), "t": (1, [2])})
    for obj in (seed, attempt, record, rejected):
        assert to_dict(obj) == dataclasses.asdict(obj)
    assert to_dict(record)["attempts"][0]["usage"] is not attempt.usage  # a copy, as asdict makes


def test_changing_the_executor_reruns_nothing(tmp_path: Path) -> None:
    """executor, workers, shard_retries and ray.* change where shards run, never what they hold."""
    write_seeds(tmp_path / "seeds.jsonl", 4)
    first = Run(run_config(tmp_path, "http://127.0.0.1:9/v1", "r", shards=2, executor="serial"))
    first.prepare()
    run_stage(first, "seeds")
    hash_before = first.config_hash()
    data = cfg.to_dict(first.config)
    data.update(executor="ray", workers=3, shard_retries=0, ray={"address": "auto", "num_cpus": 1})
    second = Run(cfg.from_dict(RunConfig, data))
    second.prepare()  # no "different config" error, no invalidation
    assert second.markers("seeds").stage_done() and second.config_hash() == hash_before
