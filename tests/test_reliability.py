"""Nothing lost, whatever happens to the run directory (issue 25), against real files, the real
local OpenAI-protocol server and real processes: one writer per run directory (an OS lock that a
kill -9 releases), integrity on read (a stage checks its input shards against what their markers
recorded), resource errors (a full disk) as user errors with every paid answer cached, damaged
files of our own named with the fix, a base_url with credentials, and bad input rejected."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctxsynth import config as cfg
from ctxsynth.errors import UserError
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.run import Run, run_all
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer

N = 6


def _seeds(tmp_path: Path, n: int = N) -> None:
    rows = [{"id": f"s{i}", "instruction": f"Who founded settlement number {i}?", "answer": f"Founder {i}"}
            for i in range(n)]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _data(tmp_path: Path, url: str, **top: Any) -> dict[str, Any]:
    return {"name": "r", "out_dir": "runs", "seed": 3, "shards": 3, "executor": "serial",
            "stages": ["seeds", "synthesize", "assemble", "export"],
            "seeds": {"source": "jsonl", "path": "seeds.jsonl"},
            "llm": {"backend": "openai", "model": "test-model", "max_tokens": 512,
                    "options": {"base_url": url, "max_retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.02}},
            "synth": {"target_words": 80}, "assemble": {"target_tokens": 256},
            "export": {"formats": ["trl_messages"]}, **top}


def _config(tmp_path: Path, url: str, **top: Any) -> Path:
    _seeds(tmp_path)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(_data(tmp_path, url, **top)))
    return path


def _cli(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ctxsynth.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout)


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _cli(tmp_path, "run", "run.yaml", "--no-preflight", *args)


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    return " ".join(errors)


def _in_process(tmp_path: Path, url: str, **top: Any) -> Run:
    _seeds(tmp_path)
    return Run(cfg.from_dict(RunConfig, _data(tmp_path, url, **top)), base_dir=tmp_path)


def _rows(tmp_path: Path) -> int:
    folder = tmp_path / "runs" / "r" / "export" / "trl_messages"
    return sum(len(p.read_text().splitlines()) for p in folder.glob("*.jsonl"))


# --- 1. one writer per run directory ------------------------------------------------------------


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ctxsynth import config as cfg
    from ctxsynth.pipeline.config import RunConfig
    from ctxsynth.pipeline.run import Run
    run = Run(cfg.load(RunConfig, Path("run.yaml")), base_dir=Path.cwd())
    run.lock()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_second_run_on_the_directory_stops_at_once_naming_the_pid_and_kill_9_frees_it(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        _config(tmp_path, server.url, stages=["seeds", "synthesize"])
        holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            started = time.monotonic()
            second = _run_cli(tmp_path)
            assert second.returncode == 2, second.stderr
            assert time.monotonic() - started < 20  # at once: no request, no stage
            line = _error_line(second)
            assert f"PID {holder.pid}" in line and str(tmp_path / "runs" / "r") in line, second.stderr
            assert "Traceback" not in second.stderr and server.hits == 0
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        after = _run_cli(tmp_path)  # the kernel released the dead holder's lock
        assert after.returncode == 0, after.stderr
        assert server.hits == N


def test_the_lock_is_held_once_per_process(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        run = _in_process(tmp_path, server.url, stages=["seeds"])
        run.lock()
        again = Run(run.config, base_dir=tmp_path)
        again.prepare()  # the same process: not a second writer
        run_all(again)
    assert (again.state / "seeds" / "DONE").exists()


# --- 2. integrity on read -------------------------------------------------------------------------


def test_a_missing_shard_whose_marker_remains_is_an_error_not_a_smaller_export(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        _config(tmp_path, server.url)
        first = _run_cli(tmp_path)
        assert first.returncode == 0, first.stderr
        rows = _rows(tmp_path)
        assert rows == N
        lost = tmp_path / "runs" / "r" / "synth" / "shard-00002.jsonl.gz"
        lost.unlink()
        again = _run_cli(tmp_path, "--force", "assemble")
    assert again.returncode == 2, again.stderr
    line = _error_line(again)
    assert str(lost) in line and "--force synthesize" in line, again.stderr
    assert "Traceback" not in again.stderr


def test_a_truncated_shard_is_named_with_the_stage_to_rerun(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        run = _in_process(tmp_path, server.url, stages=["seeds", "synthesize", "assemble"])
        run.prepare()
        run_all(run)
        shard = run.stage_dir("synthesize") / "shard-00001.jsonl.gz"
        data = shard.read_bytes()
        shard.write_bytes(data[: len(data) // 2])
        assembled = sorted(run.stage_dir("assemble").glob("shard-*"))
        with pytest.raises(UserError, match=r"shard-00001\.jsonl\.gz: \d+ bytes, but .*--force synthesize"):
            Run(run.config, base_dir=tmp_path).prepare(force="assemble")
        assert sorted(run.stage_dir("assemble").glob("shard-*")) == assembled  # nothing discarded yet
        (run.state / "assemble" / "DONE").unlink()
        with pytest.raises(UserError, match=r"shard-00001\.jsonl\.gz: \d+ bytes, but .*--force synthesize"):
            run_all(Run(run.config, base_dir=tmp_path))  # a rerun of the stage that reads it, too
    from ctxsynth.io import DamagedFile, read_jsonl

    with pytest.raises(DamagedFile, match=r"shard-00001\.jsonl\.gz: damaged"):
        list(read_jsonl(shard))  # a reader without a marker to check names the file as well


# --- 4. damaged files of our own ----------------------------------------------------------------


def test_a_garbage_shard_marker_is_named_with_the_fix(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        run = _in_process(tmp_path, server.url, stages=["seeds", "synthesize"])
        run.prepare()
        run_all(run)
        marker = run.state / "seeds" / "shard-00001.done"
        marker.write_text("\x00\x17garbage{")
        (run.state / "synthesize" / "DONE").unlink()
        with pytest.raises(UserError, match=r"shard-00001\.done.*--force seeds"):
            run_all(Run(run.config, base_dir=tmp_path))


def test_a_garbled_cache_is_named_before_force_discards_anything(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        config = _config(tmp_path, server.url, stages=["seeds", "synthesize", "assemble"])
        assert _run_cli(tmp_path).returncode == 0
        cache = tmp_path / "runs" / "r" / "cache.sqlite"
        for extra in cache.parent.glob("cache.sqlite-*"):
            extra.unlink()
        cache.write_bytes(b"this is not a database" * 200)
        assembled = sorted((tmp_path / "runs" / "r" / "assemble").glob("shard-*"))
        proc = _run_cli(tmp_path, "--force", "synthesize")
        assert config.exists()
    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc)
    assert str(cache) in line and "delete it" in line, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted((tmp_path / "runs" / "r" / "assemble").glob("shard-*")) == assembled  # nothing discarded


# --- 3. resource errors -----------------------------------------------------------------------------


def test_a_full_disk_is_a_user_error_and_every_paid_answer_is_cached(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxsynth import io

    real = io.AtomicFile.finish

    def full(self: io.AtomicFile) -> None:
        if "synth" in self.path.parts and self.path.name.startswith("shard-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self)

    with OpenAIServer(context_writer) as server:
        run = _in_process(tmp_path, server.url, stages=["seeds", "synthesize"])
        run.prepare()
        monkeypatch.setattr(io.AtomicFile, "finish", full)
        with pytest.raises(UserError) as error:
            run_all(run)
        paid = server.hits
    message = str(error.value)
    assert "No space left on device" in message and str(run.stage_dir("synthesize")) in message
    assert "free" in message
    assert paid == N // 3  # one shard's requests: it stopped at the first write, no shard retried
    from ctxsynth.llm.cache import RequestCache

    cache = RequestCache(run.dir / "cache.sqlite")
    assert len(cache) == paid  # every paid answer is in the cache
    cache.close()


def test_a_read_only_run_directory_is_one_line_exit_2(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    with OpenAIServer(context_writer) as server:
        _config(tmp_path, server.url, stages=["seeds"])
        assert _run_cli(tmp_path).returncode == 0
        seeds = tmp_path / "runs" / "r" / "seeds"
        (tmp_path / "runs" / "r" / "_state" / "seeds" / "DONE").unlink()
        for p in seeds.glob("shard-*"):
            p.unlink()
        for p in (tmp_path / "runs" / "r" / "_state" / "seeds").glob("shard-*"):
            p.unlink()
        seeds.chmod(0o555)
        try:
            proc = _run_cli(tmp_path)
        finally:
            seeds.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc)
    assert str(seeds) in line and "Permission denied" in line, proc.stderr
    assert "Traceback" not in proc.stderr


# --- 5. bad input --------------------------------------------------------------------------------


def test_a_lone_surrogate_in_a_seed_id_is_rejected_not_a_crash(tmp_path: Path) -> None:
    lines = ['{"id": "ok1", "instruction": "Who founded the first town?", "answer": "Ann"}',
             '{"id": "bad\\ud800", "instruction": "Who founded the second town?", "answer": "Bo"}',
             '{"id": "ok2", "instruction": "Who founded the third town?", "answer": "Cy"}']
    (tmp_path / "seeds.jsonl").write_text("\n".join(lines) + "\n")
    data = _data(tmp_path, "http://127.0.0.1:9/v1", stages=["seeds"], shards=1)
    data["seeds"]["on_error"] = "reject"
    run = Run(cfg.from_dict(RunConfig, data), base_dir=tmp_path)
    run.prepare()
    run_all(run)
    from ctxsynth.io import read_shards

    assert [r["id"] for r in read_shards(run.stage_dir("seeds"))] == ["ok1", "ok2"]
    rejected = list(read_shards(run.stage_dir("seeds") / "rejected"))
    assert len(rejected) == 1 and rejected[0]["reason"] == "invalid_utf8"


def test_an_unterminated_string_says_at_once(tmp_path: Path) -> None:
    from ctxsynth.seeds.rows import jsonl_rows

    (tmp_path / "seeds.jsonl").write_text('{"id": "a", "instruction": "Who wrote it?\n')
    (row,) = jsonl_rows(tmp_path / "seeds.jsonl")
    assert row.problem is not None and "starting at column" in row.problem and " at at " not in row.problem


def test_a_python_tag_in_an_override_is_one_config_error(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"name": "r"}))
    proc = _cli(tmp_path, "validate", "run.yaml", "seed=!!python/object/apply:os.system ['true']")
    assert proc.returncode == 2, proc.stderr
    assert "override" in _error_line(proc) and "Traceback" not in proc.stderr


# --- 6. credentials in base_url ------------------------------------------------------------------


def test_a_base_url_with_credentials_reaches_the_server(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        url = server.url.replace("http://", "http://alice:p%40ss@")
        _config(tmp_path, url, stages=["seeds", "synthesize"])
        proc = _run_cli(tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert server.hits == N
    assert "alice" not in (tmp_path / "runs" / "r" / "config.yaml").read_text()
    assert "p%40ss" not in proc.stderr


def test_url_credentials_become_the_basic_header_httpx_would_send() -> None:
    import base64

    import httpx2 as httpx

    from ctxsynth.llm.openai.connection import url_credentials

    url, headers = url_credentials("http://alice:p%40ss@127.0.0.1:8000/v1")
    assert url == "http://127.0.0.1:8000/v1"
    sent = httpx.Request("GET", "http://alice:p%40ss@127.0.0.1:8000/v1")
    httpx.BasicAuth("alice", "p@ss").sync_auth_flow(sent).__next__()
    assert headers == {"Authorization": sent.headers["Authorization"]}
    assert base64.b64decode(headers["Authorization"].split()[1]) == b"alice:p@ss"
    assert url_credentials("http://127.0.0.1:8000/v1") == ("http://127.0.0.1:8000/v1", None)


# --- 8. smaller ------------------------------------------------------------------------------------


def test_a_changed_model_needs_no_overwrite_when_synthesis_finished_nothing(tmp_path: Path) -> None:
    from ctxsynth.errors import BackendUnavailable

    data = _data(tmp_path, "http://127.0.0.1:9/v1", stages=["seeds", "synthesize"], shards=1,
                 max_consecutive_failures=2)
    data["llm"]["options"]["max_retries"] = 0
    _seeds(tmp_path)
    run = Run(cfg.from_dict(RunConfig, data), base_dir=tmp_path)
    run.prepare()
    with pytest.raises(BackendUnavailable):
        run_all(run)  # a wrong base_url: nothing synthesized
    with OpenAIServer(context_writer) as server:
        data["llm"]["options"]["base_url"] = server.url
        data["llm"]["model"] = "test-model"
        fixed = Run(cfg.from_dict(RunConfig, data), base_dir=tmp_path)
        fixed.prepare()  # no --overwrite: there is no synthesized output to discard
        run_all(fixed)
        assert server.hits == N
        data["llm"]["temperature"] = 0.5
        with pytest.raises(UserError, match="--overwrite"):  # now there is
            Run(cfg.from_dict(RunConfig, data), base_dir=tmp_path).prepare()


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 2 MB tmpfs (needs the right to mount: root, as on this project's dev machines)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def test_a_really_full_disk_stops_with_one_line_and_the_rerun_finishes(tmp_path: Path, small_disk: Path) -> None:
    with OpenAIServer(context_writer) as server:
        _config(tmp_path, server.url, stages=["seeds", "synthesize"], out_dir=str(small_disk))
        seeds = _cli(tmp_path, "seeds", "run.yaml")
        assert seeds.returncode == 0, seeds.stderr
        filler = _fill(small_disk)
        full = _run_cli(tmp_path)
        assert full.returncode == 2, full.stderr
        line = _error_line(full)
        assert str(small_disk) in line and ("No space left" in line or "disk is full" in line), full.stderr
        assert "free space" in line and "Traceback" not in full.stderr
        paid = server.hits
        filler.unlink()
        again = _run_cli(tmp_path)
        assert again.returncode == 0, again.stderr
        assert server.hits - paid <= N  # nothing answered and cached is paid again
    assert (small_disk / "r" / "_state" / "synthesize" / "DONE").exists()


def test_a_cache_that_cannot_grow_is_a_resource_error(small_disk: Path) -> None:
    from ctxsynth.io import ResourceError
    from ctxsynth.llm.base import ChatResult
    from ctxsynth.llm.cache import RequestCache

    cache = RequestCache(small_disk / "cache.sqlite")
    cache.put("a", {"m": 1}, ChatResult("first answer", "stop"))
    _fill(small_disk)
    with pytest.raises(ResourceError, match=r"cache\.sqlite: database or disk is full; free space"):
        cache.put("b", {"m": 1}, ChatResult("x" * 200_000, "stop"))
    assert cache.get("a") is not None and cache.get("a").text == "first answer"  # type: ignore[union-attr]
    cache.close()


# --- 6 (issue point 6). stalls ---------------------------------------------------------------------


def test_a_lone_request_after_earlier_calls_hedges_its_stall_instead_of_waiting_it_out() -> None:
    """A regeneration round of one request is a call of its own: its backend knows the endpoint's
    latencies from the calls before it, so a stalled attempt gets a hedge after ~1 s. Before, every
    call warmed up from nothing and the lone request waited out the whole stall (here 20 s)."""
    from ctxsynth.llm.base import ChatRequest
    from ctxsynth.llm.openai.backend import OpenAIBackend
    from ctxsynth.testing.openai_server import echo_responder
    from ctxsynth.testing.scripting import Fault

    with OpenAIServer(echo_responder, latency_s=0.05) as server:
        backend = OpenAIBackend("test-model", base_url=server.url, max_concurrency=8)
        backend.generate([ChatRequest(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(24)])
        server.inject(Fault.stall(20), times=1)
        started = time.monotonic()
        (result,) = backend.generate([ChatRequest(messages=[{"role": "user", "content": "the lone one"}])])
        took = time.monotonic() - started
    assert result.ok and result.hedges == 1
    assert took < 6, took


def test_a_dead_server_trips_the_breaker_in_seconds(tmp_path: Path) -> None:
    """A closed port at the default retries (6), backoff and breaker (20 in a row): each request
    made its whole backoff before the breaker heard of it (~30 s here, ~96 s in the issue)."""
    from ctxsynth.testing.openai_server import OpenAIServer as _Server

    with _Server() as closed:
        url = closed.url
    _seeds(tmp_path, 40)
    data = _data(tmp_path, url, stages=["seeds", "synthesize"], shards=1)
    data["llm"]["options"] = {"base_url": url, "max_concurrency": 8}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(data))
    started = time.monotonic()
    proc = _run_cli(tmp_path)
    took = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    assert "connection_error on 20 requests in a row (outage)" in _error_line(proc), proc.stderr
    assert took < 15, took


def test_the_summary_counts_what_reached_the_server(tmp_path: Path) -> None:
    from ctxsynth.testing.scripting import Fault

    with OpenAIServer(context_writer) as server:
        server.inject(Fault("status", status=500), times=2)
        _config(tmp_path, server.url, stages=["seeds", "synthesize"], shards=1)
        proc = _run_cli(tmp_path)
        assert proc.returncode == 0, proc.stderr
        hits = server.hits
    throughput = json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())["throughput"]
    assert throughput["requests_sent"] == N and throughput["http_attempts"] == hits == N + 2
    assert f"{N} requests sent in {N + 2} HTTP attempts (2 retries and hedges)" in " ".join(proc.stdout.split())


def test_verbose_shows_every_workers_request_retry_and_hedge_counts(tmp_path: Path) -> None:
    with OpenAIServer(context_writer) as server:
        _config(tmp_path, server.url.replace("http://", "http://bob:secret@"), stages=["seeds", "synthesize"],
                shards=2, executor="local", workers=2)
        proc = _run_cli(tmp_path, "-v")
    assert proc.returncode == 0, proc.stderr
    counts = [line for line in proc.stderr.splitlines() if "retries" in line and "hedges" in line]
    assert len(counts) == 2, proc.stderr  # one per shard, from the worker processes
    assert "HTTP Request:" not in proc.stderr and "secret" not in proc.stderr


class _Recorder:
    def __init__(self) -> None:
        self.advances: list[int] = []

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        self.advances.append(n)

    def add_total(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


def test_the_progress_bar_moves_per_answer_on_worker_processes(tmp_path: Path) -> None:
    from ctxsynth.pipeline.run import run_stage

    with OpenAIServer(context_writer) as server:
        run = _in_process(tmp_path, server.url, stages=["seeds", "synthesize"], shards=2, executor="local",
                          workers=2)
        run.prepare()
        run_stage(run, "seeds")
        progress = _Recorder()
        run_stage(run, "synthesize", progress)
    assert sum(progress.advances) == N
    assert progress.advances == [1] * N  # one step per answer, not one per finished shard


def test_a_read_only_file_system_is_one_line_exit_2(tmp_path: Path, small_disk: Path) -> None:
    with OpenAIServer(context_writer) as server:
        _config(tmp_path, server.url, stages=["seeds", "synthesize"], out_dir=str(small_disk))
        assert _cli(tmp_path, "seeds", "run.yaml").returncode == 0
        if subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True).returncode:
            pytest.skip("cannot remount the tmpfs read-only")
        proc = _run_cli(tmp_path)
        assert server.hits == 0
    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc)
    assert str(small_disk / "r") in line and "Read-only file system" in line and "another out_dir" in line, line
    assert "Traceback" not in proc.stderr


def test_a_truncated_gzip_seed_file_is_named_not_aborted(tmp_path: Path) -> None:
    import gzip

    rows = "".join(json.dumps({"id": f"s{i}", "instruction": f"Who founded town {i}?", "answer": f"F{i}"}) + "\n"
                   for i in range(200))
    packed = gzip.compress(rows.encode())
    (tmp_path / "seeds.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    data = _data(tmp_path, "http://127.0.0.1:9/v1", stages=["seeds"], shards=1)
    data["seeds"]["path"] = "seeds.jsonl.gz"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(data))
    proc = _run_cli(tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc)
    assert "seeds.jsonl.gz: not a complete gzip file" in line and "Aborted" not in proc.stderr, proc.stderr
