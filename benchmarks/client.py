"""Benchmark: the `openai` backend against the plain OpenAI SDK (AsyncOpenAI + asyncio.Semaphore(C)),
on the project's fault-injecting server (`python -m ctxsynth.testing.serve`).

Every client run is its own process (CPU time and peak RSS are the client's alone) against a fresh
server in another process (its CPU does not count as the client's; no stalled leftovers from the
previous run). The two clients alternate, the order flipping each round; figures are medians of
`--repeats` rounds. Four scenarios (the issue's):

- fault-free: N requests, C in flight, fixed latency: throughput as a share of C / latency (each
  client's clock and CPU count start once its libraries are imported; building the client counts);
- faults: the same with `--fault-rate` of attempts faulty, in equal shares 429 (Retry-After 1),
  500, a stall of `--stall-s`, malformed JSON and a truncated reply, fixed by `--fault-seed` (both
  clients meet the same faults): usable replies (complete, not truncated) and wall time as a
  multiple of the same client's fault-free wall time;
- overload: a server that answers 429 above `--overload-above` requests in flight: wall time vs the
  ideal N / (overload_above / latency), failures;
- volume: `--volume-n` requests at `--volume-latency`: CPU ms per request and peak RSS, with RSS
  also at a quarter of that N to show whether it grows with N.

    python benchmarks/client.py                                   # the issue's sizes (~20 min)
    python benchmarks/client.py --n 40 --volume-n 200 --repeats 1 --stall-s 2   # smoke
    python benchmarks/client.py --pipeline 500    # `ctxsynth run` (seeds + synthesize) instead
    # in parts (e.g. under a per-command time limit), then one report:
    python benchmarks/client.py --scenarios free,faults --json a.json
    python benchmarks/client.py --scenarios overload,volume,volume_quarter --json b.json
    python benchmarks/client.py --merge a.json b.json

`--client-src DIR` imports the ctxsynth client (and, with --pipeline, the CLI) from another
checkout's src/ (to measure an older version); the server always comes from this checkout.
With `--pipeline N` the same server (the context-writing responder) serves `ctxsynth run` on N
seeds, fault-free and with faults: wall time, contexts kept, and the share of wall time with no
request in flight, measured at the server.

The last line: `client_efficiency: <x> fault_usable: <u>/<n> fault_slowdown: <x>
overload_vs_ideal: <x> cpu_ratio_20k: <x>` (ctxsynth's figures; cpu_ratio = ctxsynth / SDK CPU per
request).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

CLIENTS = ("sdk", "ctxsynth")
SIZES = ("n", "concurrency", "latency", "max_tokens", "fault_rate", "fault_seed", "stall_s", "overload_above",
         "volume_n", "volume_latency")


def _requests(n: int, max_tokens: int) -> Iterator[tuple[list[dict[str, str]], dict[str, Any]]]:
    for i in range(n):
        yield [{"role": "user", "content": f"request {i}: say something"}], {"temperature": 0.0, "max_tokens": max_tokens}


async def _sdk(url: str, n: int, concurrency: int, max_tokens: int) -> tuple[int, int]:
    """The plain SDK: its own defaults (2 retries, 600 s timeout) under a semaphore."""
    import openai

    client = openai.AsyncOpenAI(api_key="sk-local", base_url=url)
    sem = asyncio.Semaphore(concurrency)

    async def one(messages: list[dict[str, str]], params: dict[str, Any]) -> bool:
        async with sem:
            try:
                r = await client.chat.completions.create(model="test-model", messages=messages,  # type: ignore[arg-type]
                                                         **params)
            except Exception:  # noqa: BLE001 - a failed request is a count, not a crash
                return False
            return r.choices[0].finish_reason != "length" and r.choices[0].message.content is not None

    results = await asyncio.gather(*(one(m, p) for m, p in _requests(n, max_tokens)))
    await client.close()
    return sum(results), n - sum(results)


def _ctxsynth(url: str, n: int, concurrency: int, max_tokens: int) -> tuple[int, int]:
    """ctxsynth's backend with its defaults, streaming: results go to a counter, nothing kept."""
    from ctxsynth.llm.base import ChatRequest, SamplingParams
    from ctxsynth.llm.openai.backend import OpenAIBackend

    backend = OpenAIBackend("test-model", base_url=url, max_concurrency=concurrency)
    counts = [0, 0]

    def count(_: int, result: Any) -> None:
        counts[0 if result.ok and result.finish_reason != "length" else 1] += 1

    batch = (ChatRequest(m, SamplingParams(temperature=p["temperature"], max_tokens=p["max_tokens"]))
             for m, p in _requests(n, max_tokens))
    if hasattr(backend, "stream"):
        backend.stream(batch, count)
    else:  # an older ctxsynth (--client-src): one batch
        backend.generate(list(batch), on_result=count)
    return counts[0], counts[1]


def client_main(argv: list[str]) -> None:
    """One client run in this process; prints one JSON line."""
    kind, url, n, concurrency, max_tokens = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    # the clock starts once the client's libraries are imported (about 1 s of start-up for either
    # client, not part of its request rate); building the client and the ramp-up stay inside it
    import openai  # noqa: F401

    if kind != "sdk":
        import ctxsynth.llm.openai.backend  # noqa: F401
    start, cpu0 = time.perf_counter(), time.process_time()
    if kind == "sdk":
        usable, failed = asyncio.run(_sdk(url, n, concurrency, max_tokens))
    else:
        usable, failed = _ctxsynth(url, n, concurrency, max_tokens)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"usable": usable, "failed": failed, "wall_s": wall, "cpu_s": cpu, "rss_mb": rss_mb}))


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(src: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": src}


def _server(args: argparse.Namespace, latency: float, extra: list[str]) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "ctxsynth.testing.serve", "--port", "0", "--latency", str(latency), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=_env(os.path.join(ROOT, "src")))
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("serving "):
        proc.kill()
        raise SystemExit(f"test server did not start: {line!r}")
    return proc, line.split()[1]


def run_once(args: argparse.Namespace, kind: str, n: int, latency: float, extra: list[str]) -> dict[str, Any]:
    server, url = _server(args, latency, extra)
    try:
        out = subprocess.run([sys.executable, __file__, "_client", kind, url, str(n), str(args.concurrency),
                              str(args.max_tokens)], capture_output=True, text=True, check=True,
                             env=_env(args.client_src))
        stats = _stats(url)
        server_cpu = _cpu_s(server.pid)
    finally:
        server.kill()
        server.wait()
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row.update(server_hits=stats["hits"], server_max_in_flight=stats["max_in_flight"],
               server_429=stats["outcomes"].get("http_429", 0), server_cpu_s=server_cpu, load=_load())
    return row


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> float:
    """The 1-minute load average: how busy the machine was (the figures are only comparable within a round)."""
    return os.getloadavg()[0]


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=10) as resp:
        return json.load(resp)


def pipeline_once(args: argparse.Namespace, tmp: str, extra: list[str], label: str) -> dict[str, Any]:
    """`ctxsynth run` (seeds + synthesize) on args.pipeline seeds against a fresh server."""
    import yaml

    seeds = os.path.join(tmp, "seeds.jsonl")
    with open(seeds, "w") as f:
        for i in range(args.pipeline):
            f.write(json.dumps({"id": f"q{i}", "instruction": f"Which harbour did captain number {i} sail from?",
                                "answer": f"Port Ilvar {i}", "task": "single_doc_qa"}) + "\n")
    server, url = _server(args, args.latency, ["--responder", "context", *extra])
    config = {"name": label, "out_dir": os.path.join(tmp, "runs"), "shards": args.shards, "stages": ["seeds", "synthesize"],
              "seeds": {"source": "jsonl", "path": seeds}, "synth": {"target_words": 120},
              "llm": {"backend": "openai", "model": "m", "max_tokens": 1024,
                      "options": {"base_url": url, "max_concurrency": args.concurrency}}}
    path = os.path.join(tmp, f"{label}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    try:
        start, cpu0 = time.perf_counter(), os.times()
        subprocess.run([sys.executable, "-m", "ctxsynth.cli", "run", path], capture_output=True, text=True,
                       check=True, env=_env(args.client_src))
        wall, cpu1 = time.perf_counter() - start, os.times()
        stats = _stats(url)
    finally:
        server.kill()
        server.wait()
    kept = 0
    for i in range(args.shards):
        with gzip.open(os.path.join(tmp, "runs", label, "synth", f"shard-{i:05d}.jsonl.gz"), "rt") as f:
            kept += sum(1 for _ in f)
    return {"wall_s": wall, "kept": kept, "hits": stats["hits"], "idle_share": stats["idle_share"],
            "idle_s": stats["idle_s"], "max_gap_s": stats.get("max_gap_s", 0.0), "load": _load(),
            "server_busy_s": stats["busy_span_s"], "cpu_s": cpu1.children_user + cpu1.children_system
            - cpu0.children_user - cpu0.children_system}


def pipeline(args: argparse.Namespace) -> None:
    import tempfile

    faults = ["--fault-rate", str(args.fault_rate), "--fault-seed", str(args.fault_seed), "--stall-s", str(args.stall_s)]
    rows: dict[str, list[dict[str, Any]]] = {"fault-free": [], f"faults {args.fault_rate:.0%}": []}
    for r in range(args.repeats):
        for (name, extra) in zip(rows, ([], faults), strict=True):
            with tempfile.TemporaryDirectory() as tmp:
                rows[name].append(pipeline_once(args, tmp, extra, f"p{r}"))
            print(f"  pipeline {name} round {r + 1}: {json.dumps(rows[name][-1])}", file=sys.stderr, flush=True)
    ideal = args.pipeline / (args.concurrency / args.latency)
    print(f"ctxsynth run (seeds + synthesize), {args.pipeline} seeds, {args.shards} shard(s), C={args.concurrency}, "
          f"latency {args.latency}s, "
          f"ideal {ideal:.1f}s; medians of {args.repeats}")
    print(f"{'scenario':<14}{'wall s':>8}{'x ideal':>9}{'kept':>6}{'hits':>6}{'idle s':>8}{'idle share':>12}"
          f"{'max gap s':>10}{'CPU s':>8}{'load':>6}")
    med = {k: {f: statistics.median(row[f] for row in v) for f in v[0]} for k, v in rows.items()}
    for name, m in med.items():
        print(f"{name:<14}{m['wall_s']:>8.1f}{m['wall_s'] / ideal:>9.2f}{m['kept']:>6.0f}{m['hits']:>6.0f}"
              f"{m['idle_s']:>8.2f}{m['idle_share']:>12.3f}{m['max_gap_s']:>10.2f}{m['cpu_s']:>8.1f}{m['load']:>6.1f}")
    free, flt = med.values()
    print(f"pipeline_idle_share: {free['idle_share']:.3f} pipeline_idle_share_faults: {flt['idle_share']:.3f} "
          f"pipeline_fault_slowdown: {flt['wall_s'] / free['wall_s']:.2f} pipeline_kept_faults: {flt['kept']:.0f}/{args.pipeline}")


def scenario(args: argparse.Namespace, name: str, n: int, latency: float, extra: list[str],
             repeats: int | None = None) -> dict[str, dict[str, float]]:
    """Medians per client over alternating rounds."""
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in CLIENTS}
    for r in range(repeats or args.repeats):
        for kind in CLIENTS if r % 2 == 0 else CLIENTS[::-1]:
            rows[kind].append(run_once(args, kind, n, latency, extra))
            print(f"  {name} round {r + 1} {kind}: {json.dumps(rows[kind][-1])}", file=sys.stderr, flush=True)
    return {k: {f: statistics.median(row[f] for row in v) for f in v[0]} for k, v in rows.items()}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        client_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.5)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--fault-rate", type=float, default=0.2)
    p.add_argument("--fault-seed", type=int, default=1)
    p.add_argument("--stall-s", type=float, default=30.0)
    p.add_argument("--overload-above", type=int, default=16)
    p.add_argument("--volume-n", type=int, default=20000)
    p.add_argument("--volume-latency", type=float, default=0.05)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--volume-repeats", type=int, default=None, help="rounds for the volume scenarios (default --repeats)")
    p.add_argument("--json", help="also write all figures to this file")
    p.add_argument("--client-src", default=os.path.join(ROOT, "src"), help="the src/ the ctxsynth client comes from")
    p.add_argument("--pipeline", type=int, default=0, help="run `ctxsynth run` on this many seeds instead")
    p.add_argument("--shards", type=int, default=1, help="with --pipeline: the run's shards (default executor)")
    p.add_argument("--scenarios", help="comma list of free,faults,overload,volume,volume_quarter (default all)")
    p.add_argument("--merge", nargs="+", help="report from the --json files of runs with --scenarios (same sizes)")
    args = p.parse_args()
    if args.pipeline:
        pipeline(args)
        return
    if args.merge:
        res: dict[str, dict[str, dict[str, float]]] = {}
        for path in args.merge:  # the sizes come from the parts: they must agree
            with open(path) as f:
                part = json.load(f)
            for name in SIZES:
                if getattr(args, name) != part["args"][name] and path != args.merge[0]:
                    raise SystemExit(f"--merge: {path} has {name}={part['args'][name]}, not {getattr(args, name)}")
                setattr(args, name, part["args"][name])
            res.update(part["medians"])
        report(args, res)
        return
    faults = ["--fault-rate", str(args.fault_rate), "--fault-seed", str(args.fault_seed), "--stall-s", str(args.stall_s)]
    plan = {
        "free": lambda: scenario(args, "fault-free", args.n, args.latency, []),
        "faults": lambda: scenario(args, "faults", args.n, args.latency, faults),
        "overload": lambda: scenario(args, "overload", args.n, args.latency, ["--overload-above", str(args.overload_above)]),
        "volume": lambda: scenario(args, "volume", args.volume_n, args.volume_latency, [], args.volume_repeats),
        "volume_quarter": lambda: scenario(args, "volume/4", args.volume_n // 4, args.volume_latency, [],
                                           args.volume_repeats),
    }
    wanted = args.scenarios.split(",") if args.scenarios else list(plan)
    if unknown := set(wanted) - set(plan):
        raise SystemExit(f"--scenarios: unknown {sorted(unknown)}; choose from {','.join(plan)}")
    res = {name: plan[name]() for name in wanted}
    if set(res) == set(plan):
        report(args, res)
    else:  # a part of the run: --merge puts the parts' --json files together
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "medians": res}, f, indent=1)
        print(json.dumps(res, indent=1))


def report(args: argparse.Namespace, res: dict[str, dict[str, dict[str, float]]]) -> None:
    limit = args.concurrency / args.latency
    ideal_overload = args.n / (args.overload_above / args.latency)
    print(f"{'scenario':<24}{'figure':<34}{'sdk':>12}{'ctxsynth':>12}")
    lines = []
    for k in CLIENTS:
        free, flt, ovl, vol, q = (res[s][k] for s in ("free", "faults", "overload", "volume", "volume_quarter"))
        lines.append({
            "eff": args.n / free["wall_s"] / limit, "free_wall": free["wall_s"],
            "usable": int(flt["usable"]), "fault_wall": flt["wall_s"], "slow": flt["wall_s"] / free["wall_s"],
            "ovl": ovl["wall_s"] / ideal_overload, "ovl_fail": int(ovl["failed"]), "ovl_429": int(ovl["server_429"]),
            "vol_tput": args.volume_n / vol["wall_s"], "cpu_ms": 1000 * vol["cpu_s"] / args.volume_n,
            "rss": vol["rss_mb"], "rss_q": q["rss_mb"], "vol_fail": int(vol["failed"]),
            "srv_ms": 1000 * free["server_cpu_s"] / free["server_hits"], "srv_share": free["server_cpu_s"] / free["wall_s"],
            "load": statistics.median(res[s][k]["load"] for s in res),
        })
    sdk, ours = lines
    table = [
        ("fault-free", f"throughput / (C/latency={limit:.0f}/s)", "eff", ".3f"),
        ("fault-free", "wall s", "free_wall", ".1f"),
        ("fault-free", "server CPU ms/request", "srv_ms", ".3f"),
        ("fault-free", "server CPU s / wall s", "srv_share", ".2f"),
        (f"faults {args.fault_rate:.0%}", f"usable of {args.n}", "usable", "d"),
        (f"faults {args.fault_rate:.0%}", "wall s", "fault_wall", ".1f"),
        (f"faults {args.fault_rate:.0%}", "wall / own fault-free wall", "slow", ".2f"),
        (f"429 above {args.overload_above}", f"wall / ideal {ideal_overload:.1f}s", "ovl", ".2f"),
        (f"429 above {args.overload_above}", "failed requests", "ovl_fail", "d"),
        (f"429 above {args.overload_above}", "429s served", "ovl_429", "d"),
        (f"{args.volume_n} at {args.volume_latency}s", "requests/s", "vol_tput", ".0f"),
        (f"{args.volume_n} at {args.volume_latency}s", "CPU ms/request", "cpu_ms", ".3f"),
        (f"{args.volume_n} at {args.volume_latency}s", "peak RSS MB", "rss", ".0f"),
        (f"{args.volume_n // 4} at {args.volume_latency}s", "peak RSS MB", "rss_q", ".0f"),
        (f"{args.volume_n} at {args.volume_latency}s", "failed requests", "vol_fail", "d"),
        ("all", "1-min load average (median)", "load", ".1f"),
    ]
    for scen, fig, key, fmt in table:
        print(f"{scen:<24}{fig:<34}{format(sdk[key], fmt):>12}{format(ours[key], fmt):>12}")
    print(f"ctxsynth / sdk at volume: throughput {ours['vol_tput'] / sdk['vol_tput']:.2f}x, "
          f"CPU per request {ours['cpu_ms'] / sdk['cpu_ms']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "medians": res, "sdk": sdk, "ctxsynth": ours}, f, indent=1)
    print(f"client_efficiency: {ours['eff']:.3f} fault_usable: {ours['usable']}/{args.n} "
          f"fault_slowdown: {ours['slow']:.2f} overload_vs_ideal: {ours['ovl']:.2f} "
          f"cpu_ratio_20k: {ours['cpu_ms'] / sdk['cpu_ms']:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
