"""Smoke test of benchmarks/stage_memory.py: tiny sizes, every stage, the headline line printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_stage_memory_benchmark_prints_rss_per_stage_and_the_ratio_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stage_memory.py"), "--records", "12", "30",
                           "--shards", "2", "--words", "60", "--target", "400"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=580)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    for n in (12, 30):
        for stage in ("filter", "assemble", "export"):
            assert re.search(rf"records={n} stage={stage} seconds=\S+ records_per_s=\d+ peak_rss_mb=\d+", done.stdout)
    assert re.fullmatch(r"records: 12,30 rss_ratio: [\d.]+,[\d.]+,[\d.]+ peak_rss_mb: \d+", lines[-1]), lines[-1]
