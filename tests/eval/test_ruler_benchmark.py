"""benchmarks/ruler_gpu.sh at a tiny size on the CPU: the inputs step (real generators), the report
and the one-archive pack; the GPU steps are the same `ctxsynth eval` the other RULER tests run."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ruler_gpu_script_inputs_report_pack(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TASKS": "[niah_single_1]", "LENGTHS": "[4096]",
           "N": "2", "MODES": "[base]", "OUT": str(tmp_path / "out"), "REPORT_DIR": str(tmp_path / "report"),
           "CTX": f"{sys.executable} -m ctxsynth.cli", "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
           "CTXSYNTH_CACHE": os.environ.get("CTXSYNTH_CACHE", str(Path.home() / ".cache" / "ctxsynth"))}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "ruler_gpu.sh"), "inputs", "report", "pack"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "runs" / "ruler" / "items" / "smollm2" / "base_4096_niah_single_1.jsonl").is_file()
    with tarfile.open(tmp_path / "runs" / "ruler_inputs.tar.xz") as tar:
        names = tar.getnames()
    assert "runs/ruler/pkg/long_context_eval/eval/synthetic/constants.py" in names
    # the SmolLM2 pilot's SFT3 training files travel along (sft3-train trains it there)
    assert {"runs/pilot/general.jsonl", "runs/pilot/niah/sft3/export/trl_messages/data.jsonl"} <= set(names)
    assert "RULER" in (tmp_path / "report" / "README.md").read_text()
    assert (tmp_path / "out" / "ruler_results.tar").is_file()


def test_ruler_report_commits_each_runs_predictions_gzipped(tmp_path: Path) -> None:
    import gzip
    import json

    run = tmp_path / "eval" / "ruler-32k"
    run.mkdir(parents=True)
    (run / "scores.json").write_text(json.dumps({"run": {"wall_seconds": 1.0, "n_errors": 0}, "ruler": {}}))
    replies = '{"id": "base_4096_vt-0", "prediction": " VAR ABC"}\n'
    (run / "predictions.jsonl").write_text(replies)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ruler_report.py"), "--eval-dir",
                           str(tmp_path / "eval"), "--out", str(tmp_path / "report")], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Run ruler-32k" in (tmp_path / "report" / "README.md").read_text()
    assert gzip.decompress((tmp_path / "report" / "predictions" / "ruler-32k.jsonl.gz").read_bytes()).decode() == replies


def test_the_committed_ruler_page_regenerates_from_the_repository(tmp_path: Path) -> None:
    import shutil

    committed = ROOT / "docs" / "results" / "ruler_smollm2"
    copy = tmp_path / "page"
    shutil.copytree(committed, copy, ignore=shutil.ignore_patterns("README.md"))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ruler_report.py"), "--eval-dir",
                           str(tmp_path / "no-runs"), "--out", str(copy)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    page = (copy / "README.md").read_text()
    assert page == (committed / "README.md").read_text()
    # three runs x two template modes = 6 tables, and 2 modes x 2 lengths of paired rows
    assert page.count("| niah_multivalue |") == 10 and page.count("| niah_multivalue | 4K | 50 |") == 2


def test_collect_refuses_predictions_that_disagree_with_scores(tmp_path: Path) -> None:
    import gzip
    import json

    committed = ROOT / "docs" / "results" / "ruler_smollm2" / "predictions" / "ruler-smollm2-base.jsonl.gz"
    rows = [json.loads(line) for line in gzip.decompress(committed.read_bytes()).decode().splitlines()]
    run = tmp_path / "eval" / "ruler-smollm2-base"
    run.mkdir(parents=True)
    (run / "scores.json").write_text(json.dumps({"run": {}, "ruler": {"base": {}}}))  # not what the rows give
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:40]))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ruler_report.py"), "--eval-dir",
                           str(tmp_path / "eval"), "--out", str(tmp_path / "report")], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "differ" in done.stderr
    assert not (tmp_path / "report" / "predictions").exists()
