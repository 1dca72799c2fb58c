"""Scale benchmark: seeds -> synthesize (fake backend, ~300-word contexts) -> assemble (2k-token
targets) -> export (TRL messages), at N records and at N/10, and with 1 worker versus W workers.

    PYTHONPATH=src python benchmarks/scale.py --records 1000000 --workers 2 --executor local

Each pipeline runs in its own child process (a fresh driver), so one run's memory peak cannot leak
into the next; the parent samples the peak resident set (VmHWM, /proc) of the driver and of every
process under it (local workers, Ray's processes) several times a second, and the child adds its own
and its reaped children's ru_maxrss. Shards hold `--shard-size` records, so a shard's memory is the
same at every N. After the stages the child writes the end-of-run summary as `ctxsynth run` does
(it reads every synthesized record; timed as "summary"). Prints one line per pipeline, then

    records: <N> rss_ratio: <peak at N / peak at N/10> peak_rss_mb: <peak at N> worker_speedup: <r/s with W / r/s with 1>

The worker comparison runs at N/10 (both sizes run with W workers). Targets on a 2-core machine:
rss_ratio <= 1.2, peak_rss_mb < 1536, worker_speedup >= 1.7.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGES = ["seeds", "synthesize", "assemble", "export"]


def write_seeds(path: Path, n: int) -> None:
    """N short seeds (the contexts are what grows: the fake backend writes ~300 words for each)."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"s{i:08d}", "task": "single_doc_qa",
                                "instruction": f"Who founded the settlement recorded as number {i}?",
                                "answer": f"Founder {i}"}) + "\n")


def pipeline_config(out: Path, seeds: Path, n: int, workers: int, executor: str, shard_size: int,
                    stages: list[str]) -> dict[str, Any]:
    return {
        "name": "bench", "out_dir": str(out), "seed": 1, "shards": max(1, -(-n // shard_size)),
        "executor": executor, "workers": workers, "stages": stages,
        "seeds": {"source": "jsonl", "path": str(seeds)},
        "llm": {"backend": "fake", "model": "fake", "max_tokens": 1024, "options": {"words": 300}},
        "synth": {"target_words": 300, "max_attempts": 1},
        # random_draw "sample": O(k) distractor draws (the default "shuffle" is O(pool) per sample,
        # quadratic in N; its samples differ, its cost per sample does not depend on N)
        "assemble": {"target_tokens": 2048, "distractors": "any_task", "leak_check": False, "random_draw": "sample"},
        "export": {"formats": ["trl_messages"]},
    }


def child(args: argparse.Namespace) -> None:
    """One pipeline in this process; prints a JSON line with timings and ru_maxrss."""
    from ctxsynth import config as cfg
    from ctxsynth.pipeline.config import RunConfig
    from ctxsynth.pipeline.run import Run, run_stage
    from ctxsynth.pipeline.summary import write_summary

    data = json.loads(Path(args.child).read_text())
    run = Run(cfg.from_dict(RunConfig, data))
    run.prepare()
    seconds: dict[str, float] = {}
    try:
        for stage in run.config.stages:
            started = time.perf_counter()
            run_stage(run, stage, keep_executor=True)
            seconds[stage] = round(time.perf_counter() - started, 2)
    finally:
        run.close_executor()
    started = time.perf_counter()  # the end-of-run summary `ctxsynth run` writes (it reads every record)
    write_summary(run.dir)
    seconds["summary"] = round(time.perf_counter() - started, 2)
    last, before = run.config.stages[-1], run.config.stages[-2]
    written = json.loads((run.state / last / "DONE").read_text()).get("n_in" if last == "export" else "n_out", 0)
    expected = json.loads((run.state / before / "DONE").read_text()).get("n_out", 0) if last == "export" else written
    print(json.dumps({"seconds": seconds, "exported": written, "assembled": expected,
                      "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))


def hwm_kb(pid: int) -> int:
    """Peak resident set of a live process (VmHWM), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


@dataclass
class Result:
    records: int
    workers: int
    seconds: float
    stage_seconds: dict[str, float]
    peak_mb: float
    exported: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def run_pipeline(root: Path, n: int, workers: int, executor: str, shard_size: int, stages: list[str]) -> Result:
    work = root / f"n{n}-w{workers}"
    work.mkdir(parents=True)
    seeds = work / "seeds.jsonl"
    write_seeds(seeds, n)
    spec = work / "config.json"
    spec.write_text(json.dumps(pipeline_config(work / "runs", seeds, n, workers, executor, shard_size, stages)))
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(spec)], stdout=subprocess.PIPE, text=True)
    peak = {"kb": 0}

    def sample() -> None:
        while proc.poll() is None:
            for pid in [proc.pid, *descendants(proc.pid)]:
                peak["kb"] = max(peak["kb"], hwm_kb(pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    sampler.start()
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - started
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"pipeline n={n} workers={workers} failed (exit {proc.returncode})")
    report = json.loads(out.strip().splitlines()[-1])
    if not 0 < report["exported"] == report["assembled"]:
        raise SystemExit(f"pipeline n={n}: exported {report['exported']} of {report['assembled']} samples")
    shutil.rmtree(work)
    peak_kb = max(peak["kb"], report["self_kb"], report["children_kb"])
    return Result(n, workers, elapsed, report["seconds"], peak_kb / 1024, report["exported"])


def show(r: Result) -> None:
    stages = " ".join(f"{k}={v}s" for k, v in r.stage_seconds.items())
    print(f"n={r.records} workers={r.workers} seconds={r.seconds:.1f} records_per_s={r.rate:.0f} "
          f"peak_rss_mb={r.peak_mb:.0f} exported={r.exported} [{stages}]", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--shard-size", type=int, default=10_000, help="records per shard")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="a prefix of seeds,synthesize,assemble,export (e.g. seeds,synthesize: the executor part alone)")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the runs go (default: a temp dir)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    from importlib.metadata import version

    print(f"# python {platform.python_version()}, ctxsynth {version('ctxsynth')}, {os.cpu_count()} cores, "
          f"{platform.platform()}; executor={args.executor} stages={args.stages} shard_size={args.shard_size} "
          "assemble.random_draw=sample", flush=True)
    small = max(1, args.records // 10)
    stages = args.stages.split(",")
    if stages != STAGES[:len(stages)] or len(stages) < 2:
        parser.error(f"--stages must be a prefix of {','.join(STAGES)} with at least two stages")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        root = Path(tmp)
        one = run_pipeline(root, small, 1, args.executor, args.shard_size, stages)
        show(one)
        many_small = run_pipeline(root, small, args.workers, args.executor, args.shard_size, stages)
        show(many_small)
        big = run_pipeline(root, args.records, args.workers, args.executor, args.shard_size, stages)
        show(big)
    print(f"records: {args.records} rss_ratio: {big.peak_mb / many_small.peak_mb:.2f} peak_rss_mb: {big.peak_mb:.0f} "
          f"worker_speedup: {many_small.rate / one.rate:.2f}")


if __name__ == "__main__":
    main()
