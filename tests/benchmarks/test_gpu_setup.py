"""benchmarks/gpu_setup.sh, the first step of every GPU call: archives unpacked once (a marker
stops the second unpacking, which would overwrite results of the calls in between), the machine's
versions printed, and a missing archive stopping the call."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_setup.sh"


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PY": sys.executable, "SITE": str(cwd / "site"), "CARRY": str(cwd / "carry")}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_archives_unpack_once_and_versions_are_printed(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "items.jsonl").write_text('{"id": 1}\n')
    with tarfile.open(tmp_path / "inputs.tar.xz", "w:xz") as tar:
        tar.add(tmp_path / "src" / "items.jsonl", arcname="runs/items.jsonl")
    first = _run(tmp_path, "inputs.tar.xz")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "runs" / "items.jsonl").read_text() == '{"id": 1}\n'
    assert "unpacking inputs.tar.xz" in first.stdout and "torch" in first.stdout.splitlines()[-1]
    (tmp_path / "runs" / "items.jsonl").write_text("changed by a later call\n")
    second = _run(tmp_path, "inputs.tar.xz")
    assert second.returncode == 0 and "unpacked before" in second.stdout
    assert (tmp_path / "runs" / "items.jsonl").read_text() == "changed by a later call\n"


def test_a_missing_archive_stops_the_call(tmp_path: Path) -> None:
    result = _run(tmp_path, "absent.tar.xz")
    assert result.returncode != 0 and "absent.tar.xz" in result.stderr
