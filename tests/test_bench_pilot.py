"""Smoke tests of the pilot study's scripts (benchmarks/pilot.py, pilot.sh, pilot_report.py) with
tiny arguments, on real files: the shipped H200 predictions and the SQuAD asset."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
H200 = ROOT / "docs/results/smollm2_h200"


def _run(*args: str, env: dict | None = None) -> str:
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_report_gives_paired_intervals_on_the_shipped_predictions(tmp_path):
    stdout = _run(sys.executable, "benchmarks/pilot_report.py", "--out", str(tmp_path),
                  "--grid", f"base={H200 / 'base_predictions.jsonl.gz'}", f"sft3={H200 / 'sft3_predictions.jsonl.gz'}")
    rows = json.loads((tmp_path / "results.json").read_text())
    diff = next(r for r in rows if r.get("a") == "sft3" and r["variant"] == "single")
    # single NIAH at 8k: 43/100 base, 80/100 tuned (docs/results/smollm2_h200/README.md) -> +37
    assert diff["cells"]["at 8k"]["mean"] == 37.0 and diff["cells"]["at 8k"]["n"] == 100
    assert diff["cells"]["at 8k"]["low"] > 0
    assert "builtin_hotpotqa" in stdout and (tmp_path / "accuracy_vs_length.png").stat().st_size > 10_000


def test_general_rows_are_short_squad_messages(tmp_path):
    out = tmp_path / "general.jsonl"
    _run(sys.executable, "benchmarks/pilot.py", "general", str(out), "--n", "5")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5
    for row in rows:
        user, assistant = row["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert assistant["content"] and "Question:" in user["content"]


def test_pilot_script_dry_run_names_every_step():
    stdout = _run("bash", "benchmarks/pilot.sh", "sft4", "report", env={"DRY": "1"})
    assert "train configs/experiments/pilot/train.yaml output_dir=runs/pilot/train/sft4" in stdout
    assert "data.train_files=[runs/pilot/niah/sft4/export/trl_messages/data.jsonl]" in stdout
    assert "seed=42 data.shuffle_seed=0" in stdout
    assert "name=pilot-sft4-needle" in stdout and "pilot_report.py" in stdout
