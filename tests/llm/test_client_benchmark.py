"""Smoke test of benchmarks/client.py with tiny arguments, so the benchmark cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_client_benchmark_runs_all_scenarios_in_parts_and_prints_its_last_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    tiny = ["--n", "24", "--concurrency", "8", "--latency", "0.05", "--stall-s", "1", "--overload-above", "4",
            "--volume-n", "40", "--volume-latency", "0.01", "--repeats", "1"]

    def bench(*args: str) -> str:
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "client.py"), *tiny, *args],
                              capture_output=True, text=True, timeout=600, env=env, check=True).stdout

    bench("--scenarios", "free,faults", "--json", str(tmp_path / "a.json"))
    bench("--scenarios", "overload,volume,volume_quarter", "--json", str(tmp_path / "b.json"))
    out = bench("--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert "server CPU ms/request" in out and "load average" in out
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"client_efficiency: ([\d.]+) fault_usable: (\d+)/24 fault_slowdown: ([\d.]+) "
                     r"overload_vs_ideal: ([\d.]+) cpu_ratio_20k: ([\d.]+)", last)
    assert m, last
    assert int(m.group(2)) == 24  # every request usable despite 20% faults
    assert "failed requests" in out and "peak RSS MB" in out
