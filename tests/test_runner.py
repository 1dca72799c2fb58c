"""Run-level guarantees: shard layout does not change output; a SIGKILLed run resumes to the same
bytes without resending finished requests; a run directory refuses a different config."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ctxsynth import config as cfg
from ctxsynth.io import shard_files
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.run import Run, run_all
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer, prompt_fields
from ctxsynth.testing.scripting import Reply

N_SEEDS = 24


def write_seeds(path: Path, n: int = N_SEEDS) -> None:
    rows = [{"id": f"s{i:03d}", "instruction": f"Who founded settlement number {i}?", "answer": f"Founder {i}",
             "task": "single_doc_qa"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def flaky_writer(body: dict) -> Reply:
    """A generator that fails verification for every third seed on its first attempt."""
    f = prompt_fields(body)
    number = int(f["question"].rstrip("?").split()[-1])
    if number % 3 == 0 and body.get("seed", 0) % 2 == 0:
        return Reply("Context: I'm sorry, I cannot write that document for you.")
    return context_writer(body)


WORKERS = 2  # shards at once
CONCURRENCY = 2  # requests in flight per shard worker


def config_dict(tmp_path: Path, url: str, shards: int, name: str) -> dict:
    return {
        "name": name, "out_dir": str(tmp_path / "runs"), "seed": 7, "shards": shards, "workers": WORKERS,
        "stages": ["seeds", "synthesize"],
        "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")},
        "llm": {"backend": "openai", "model": "test-model", "max_tokens": 512,
                "options": {"base_url": url, "max_concurrency": CONCURRENCY, "backoff_base_s": 0.01}},
        "synth": {"target_words": 80, "max_attempts": 3},
    }


def stage_bytes(run_dir: Path, stage: str) -> bytes:
    """Decompressed concatenation of a stage's shards, in shard order."""
    return b"".join(gzip.decompress(p.read_bytes()) for p in shard_files(run_dir / stage))


def test_same_seed_gives_same_bytes_with_1_and_4_shards(tmp_path: Path) -> None:
    write_seeds(tmp_path / "seeds.jsonl")
    with OpenAIServer(flaky_writer) as server:
        runs = {}
        for shards in (1, 4):
            run = Run(cfg.from_dict(RunConfig, config_dict(tmp_path, server.url, shards, f"s{shards}")))
            run.prepare()
            run_all(run)
            runs[shards] = run.dir
    assert len(shard_files(runs[4] / "synth")) == 4
    for stage in ("seeds", "synth", "synth/rejected"):
        assert stage_bytes(runs[1], stage) == stage_bytes(runs[4], stage), stage
    kept = stage_bytes(runs[1], "synth").decode().splitlines()
    rejected = stage_bytes(runs[1], "synth/rejected").decode().splitlines()
    assert len(kept) + len(rejected) == N_SEEDS  # nothing lost
    assert all(json.loads(line)["reason"] == "refusal" for line in rejected)
    retried = [json.loads(line) for line in kept if len(json.loads(line)["attempts"]) > 1]
    assert retried  # refusals were regenerated with a new seed and passed on a later attempt
    assert retried and all(r["attempts"][0]["reason"] == "refusal" for r in retried)


def _slow_writer(body: dict) -> Reply:
    time.sleep(0.15)
    return context_writer(body)


@pytest.mark.timeout(180)
def test_sigkill_midway_then_rerun_matches_uninterrupted_run_and_resends_nothing(tmp_path: Path) -> None:
    write_seeds(tmp_path / "seeds.jsonl")
    with OpenAIServer(_slow_writer) as server:
        reference = Run(cfg.from_dict(RunConfig, config_dict(tmp_path, server.url, 4, "reference")))
        reference.prepare()
        run_all(reference)
        before = server.hits

        config_path = tmp_path / "killed.yaml"
        config_path.write_text(yaml.safe_dump(config_dict(tmp_path, server.url, 4, "killed")))
        cmd = [sys.executable, "-m", "ctxsynth.cli", "run", str(config_path)]
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while server.hits - before < 10 and time.time() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        sent_before_kill = server.hits - before
        assert 0 < sent_before_kill < N_SEEDS, "the kill must land part-way through the run"
        received = sqlite3.connect(tmp_path / "runs" / "killed" / "cache.sqlite").execute(
            "SELECT COUNT(*) FROM responses").fetchone()[0]
        assert received > 0
        before_rerun = server.hits

        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        resent = server.hits - before_rerun
        killed_keys = [r for r in server.records()[before:]]
    run_dir = tmp_path / "runs" / "killed"
    for stage in ("seeds", "synth", "synth/rejected"):
        assert stage_bytes(reference.dir, stage) == stage_bytes(run_dir, stage), stage
    # the rerun sent exactly the requests whose answers had not been received before the kill
    assert resent == N_SEEDS - received
    # only requests in flight at the kill reached the server twice: at most max_concurrency in each of
    # the shard workers running then (a CI run saw 3 with two workers of 2, which a bound of 2 refused)
    counts: dict[str, int] = {}
    for record in killed_keys:
        counts[record.key] = counts.get(record.key, 0) + 1
    assert len(counts) == N_SEEDS and sum(c - 1 for c in counts.values()) <= WORKERS * CONCURRENCY


def test_run_directory_refuses_a_different_config(tmp_path: Path) -> None:
    write_seeds(tmp_path / "seeds.jsonl", 2)
    data = config_dict(tmp_path, "http://127.0.0.1:9/v1", 1, "r")
    first = Run(cfg.from_dict(RunConfig, data))
    first.prepare()
    first.markers("synthesize").mark_shard(0, {"n_in": 2, "n_out": 2})  # a synthesized shard to discard
    data["synth"]["target_words"] = 81
    with pytest.raises(cfg.ConfigError, match=r"different config.*changed: synth.target_words\)"):
        Run(cfg.from_dict(RunConfig, data)).prepare()
    Run(cfg.from_dict(RunConfig, data)).prepare(overwrite=True)
    assert "target_words: 81" in (tmp_path / "runs" / "r" / "config.yaml").read_text()


def test_options_added_by_a_newer_version_do_not_orphan_a_run_directory(tmp_path: Path) -> None:
    write_seeds(tmp_path / "seeds.jsonl", 2)
    run = Run(cfg.from_dict(RunConfig, config_dict(tmp_path, "http://127.0.0.1:9/v1", 1, "r")))
    run.prepare()
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())
    del saved["filters"], saved["assemble"]["leak_check"]  # as written by an older ctxsynth
    (run.dir / "config.yaml").write_text(yaml.safe_dump(saved))
    Run(run.config).prepare()  # same settings: resumes
