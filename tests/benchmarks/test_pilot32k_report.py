"""The 32k pilot's report on a committed fixture: a subset of the real SmolLM2 pilot predictions
(1k-8k, 3 items per cell; SFT2 and SFT3 with two seeds), renamed to the seeded scheme. Checks the
numbers against direct computation, the seed-and-item bootstrap, effective length and verdicts,
and that pilot32k.sh prints its GPU steps."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "benchmarks" / "fixtures" / "pilot32k"
sys.path.insert(0, str(ROOT / "benchmarks"))
import pilot32k_report as report  # noqa: E402


def _rows(name: str) -> list[dict]:
    with gzip.open(FIXTURE / name, "rt") as f:
        return [json.loads(line) for line in f]


def test_report_on_the_fixture(tmp_path):
    report.main(["--predictions", str(FIXTURE), "--design", str(ROOT / "docs/results/pilot_32k/design.json"),
                 "--out", str(tmp_path), "--resamples", "400"])
    records = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "accuracy_vs_length.png").stat().st_size > 10_000
    text = (tmp_path / "results.md").read_text()
    assert "1. SFT1 drifts" in text and "5. The depth-0 cliff" in text

    # strict SFT3 multi_value at 8k = mean over both seeds of "every value found"
    cell = next(r for r in records if r["table"] == "grid" and r["strict"] and r["arm"] == "sft3"
                and r["variant"] == "multi_value")["cells"]["8k"]
    direct = [float(r["score"] >= 1.0) for s in (0, 1) for r in _rows(f"sft3-s{s}-grid.jsonl.gz")
              if r["meta"].get("variant") == "multi_value" and r["meta"]["length"] == 8192]
    assert cell["n_seeds"] == 2 and cell["n_items"] == 15
    assert abs(cell["mean"] - 100 * np.mean(direct)) < 0.01 and cell["low"] <= cell["mean"] <= cell["high"]
    partial = next(r for r in records if r["table"] == "grid" and not r["strict"] and r["arm"] == "sft3"
                   and r["variant"] == "multi_value")["cells"]["8k"]
    assert partial["mean"] >= cell["mean"]  # a share of values is never below all-or-nothing
    # the per-seed table: each seed's own strict multi_value mean at 8k (pooled above)
    seed_rows = [line for line in text.split("### Per training seed")[1].splitlines() if line.startswith("| sft3 |")]
    own = [100 * np.mean([float(r["score"] >= 1.0) for r in _rows(f"sft3-s{s}-grid.jsonl.gz")
                          if r["meta"].get("variant") == "multi_value" and r["meta"]["length"] == 8192]) for s in (0, 1)]
    header = text.split("### Per training seed")[1].splitlines()[2].split(" | ")
    column = header.index("multi_value 8k")
    assert [float(line.split(" | ")[column]) for line in seed_rows] == [round(x, 1) for x in own]

    verdicts = {r["finding"][:2]: r for r in records if r["table"] == "verdict"}
    assert set(verdicts) == {"1.", "2.", "3.", "4.", "5."}
    assert "sft3m" not in text.split("## Tables")[1]  # an arm that did not run has no rows
    assert verdicts["4."]["holds"] is not None and "SFT3-matched on multi_value not run" in verdicts["4."]["evidence"]
    # the fixture has 7 of the design's 14 runs: the verdicts say they are provisional and what is missing
    done = next(r for r in records if r["table"] == "completeness")
    present = len(list(FIXTURE.glob("*-grid.jsonl.gz")))  # base and 6 trainings
    assert done["planned"] == 14 and done["present"] == present < 14
    assert done["missing"]["sft3m"] == [0, 1, 2] and "**Provisional**" in text


def test_bootstrap_intervals_include_seed_variance():
    rng = np.random.default_rng(0)
    items = rng.random(200)
    same = np.vstack([items, items])
    apart = np.vstack([items * 0.5, np.minimum(items * 1.5, 1)])
    narrow, wide = report.estimate(same, 2000), report.estimate(apart, 2000)
    assert wide["high"] - wide["low"] > 1.5 * (narrow["high"] - narrow["low"])
    d = report.difference(same, same, 2000)
    assert d["mean"] == 0 and d["low"] == d["high"] == 0  # paired: identical arms differ by exactly 0


def test_effective_length_stops_at_the_first_miss():
    def rows(found):  # length -> how many of 4 items per variant have every value
        return {f"{v}-{n}-{k}": (v, n, 0.0, 1.0 if k < found[n] else 0.5) for n in found for v in report.VARIANTS
                for k in range(4)}

    runs = {"grid": {"a": {0: rows({2048: 4, 4096: 2, 8192: 4})}}, "needle": {}}  # strict 100, 50, 100
    rep = report.Report(runs, {"arms": ["a"], "threshold": 85}, 100)
    assert rep.effective_length("a", 85) == 2048 and rep.effective_length("a", 40) == 8192


def test_pilot32k_steps_dry_run():
    out = subprocess.run(["bash", "benchmarks/pilot32k.sh", "sft3m-s1", "sft3m-s7", "sft4-s8:train"], cwd=ROOT,
                         env={"DRY": "1", "FORCE": "1", "PATH": "/usr/bin:/bin"},  # FORCE: arms finished in runs/ here print too
                         capture_output=True, text=True, check=True).stdout
    assert "data.train_files=[runs/pilot32k/niah/sft3m/export/trl_messages/data.jsonl] seed=1" in out
    # SFT3-matched takes SFT4's steps: this machine's run of that seed, else the committed summary
    summary = ROOT / "runs/pilot32k/train/sft4-s1/summary.json"
    if not summary.is_file():
        summary = ROOT / "docs/results/pilot_32k/train/sft4-s1-summary.json"
    steps = json.loads(summary.read_text())["global_step"]
    assert "output_dir=runs/pilot32k/train/sft3m-s1 " in out and f"max_steps={steps}" in out
    assert "max_steps=STEPS_OF_SFT4_S7" in out  # a seed with no SFT4 anywhere: the dry run names the gap
    assert "name=pilot32k-sft3m-s1-needle" in out
    assert "output_dir=runs/pilot32k/train/sft4-s8" in out and "pilot32k-sft4-s8 " not in out
