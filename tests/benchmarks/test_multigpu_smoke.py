"""The several-GPU benchmarks (issue 13 item 4) at smoke size on CPU, so none can rot.

The fast ones: the shell script's dry run (every step, the commands it would run), one-replica
generation with tiny arguments, and the report over a result folder where parts are missing. The
slow one runs the whole script with TINY=1 (CPU, 2 processes for training, 2 replicas for
generation and evaluation) and checks the report's last line: identical texts and predictions.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(Path(__file__).parent))
from test_benchmarks_smoke import _run  # noqa: E402


def test_multigpu_script_dry_run_names_every_part(tmp_path: Path) -> None:
    script = BENCH / "multigpu.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    out = _run(["bash", str(script), "inputs", "all", "report"], ROOT, {"DRY": "1", "OUT": str(tmp_path)})
    assert re.search(r"^CUDA_VISIBLE_DEVICES=0 timeout \d+ python3 benchmarks/train_fsdp.py part --nprocs 1 --shape 1b "
                     r"--attn ctxsynth_varlen --compile .*--global-batch 2", out, re.M), out
    assert re.search(r"^timeout \d+ python3 benchmarks/train_fsdp.py part --nprocs 2 ", out, re.M), out
    assert re.search(r"^CUDA_VISIBLE_DEVICES=1 timeout \d+ python3 benchmarks/multigpu_generate.py --device cuda "
                     r"--devices 1 --n 2048 --max-tokens 300 --batch-size 256 --static-cache --warmup", out, re.M), out
    assert "multigpu_generate.py --device cuda --devices 2 --n 2048" in out
    assert "model.options={device: cuda, batch_size: 32, devices: 2}" in out
    assert f"multigpu_report.py --results {tmp_path}/multigpu --out docs/results/multigpu.md" in out
    configs = [arg for line in out.splitlines() for arg in line.split() if arg.startswith("configs/")]
    assert configs and all((ROOT / c).is_file() for c in configs), configs
    alone = _run(["bash", str(script), "gen1", "eval1", "zero3"], ROOT, {"DRY": "1", "OUT": str(tmp_path)})
    zero3 = [line for line in alone.splitlines() if "deepspeed_zero3.yaml" in line]  # without --compile
    assert len(zero3) == 2 and "--nprocs 1 " in zero3[0] and "--nprocs 2 " in zero3[1], alone
    assert all("--compile" not in line and "--shape 1b --attn ctxsynth_varlen" in line for line in zero3), zero3
    assert re.search(r"^CUDA_VISIBLE_DEVICES=0 timeout \d+ python3 benchmarks/multigpu_generate.py --device cuda "
                     r"--devices 1 ", alone, re.M), alone
    assert re.search(r"^CUDA_VISIBLE_DEVICES=0 timeout \d+ python3 -m ctxsynth.cli eval .* name=eval_1 .*"
                     r"model.options=\{device: cuda, batch_size: 32\}$", alone, re.M), alone
    bad = subprocess.run(["bash", str(script), "nonsense"], capture_output=True, text=True, env={"DRY": "1", "PATH": "/usr/bin:/bin"})
    assert bad.returncode == 2 and "unknown step nonsense" in bad.stderr


def test_generation_benchmark_runs_one_replica_and_the_report_marks_missing_parts(tmp_path: Path) -> None:
    results = tmp_path / "multigpu"
    out = _run([sys.executable, str(BENCH / "multigpu_generate.py"), "--device", "cpu", "--devices", "1", "--n", "3",
                "--max-tokens", "4", "--batch-size", "2", "--static-cache", "--warmup", "--out", str(results / "gen_1.json"),
                "--texts", str(tmp_path / "texts.jsonl")], tmp_path, {"OMP_NUM_THREADS": "1"})
    row = json.loads(out.splitlines()[-1])
    assert row["n"] == 3 and row["failed"] == 0 and 3 <= row["completion_tokens"] <= 12 and row["tokens_per_s"] > 0
    assert row["static_cache"] is True and row["warmup"] is True and row["warmup_s"] > 0
    texts = [json.loads(line) for line in (tmp_path / "texts.jsonl").read_text().splitlines()]
    assert [t["i"] for t in texts] == [0, 1, 2] and all(t["text"] and t["error"] is None for t in texts)
    report = _run([sys.executable, str(BENCH / "multigpu_report.py"), "--results", str(results), "--out",
                   str(tmp_path / "multigpu.md")], tmp_path)
    assert "Missing: gen_2.json" in report and "Missing: train/fsdp_1.json" in report
    assert report.strip().splitlines()[-1] == ("gen_speedup: missing fsdp_efficiency: missing losses_match: missing "
                                              "eval_identical: missing")


@pytest.mark.slow  # the whole script at smoke size: several model loads and two 2-process runs (~10 min here)
def test_multigpu_script_tiny_on_cpu_end_to_end(tmp_path: Path) -> None:
    env = {"TINY": "1", "OUT": str(tmp_path), "PY": sys.executable, "REPORT": str(tmp_path / "multigpu.md")}
    out = _run(["bash", str(BENCH / "multigpu.sh"), "inputs", "all", "report"], ROOT, env, timeout=1500)
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"gen_speedup: [\d.]+ fsdp_efficiency: [\d.]+ losses_match: yes eval_identical: yes", last), out
    assert "Texts identical to one GPU (sha256 over all 4 texts in request order): **yes**" in out


def test_report_has_a_zero3_section_only_where_deepspeed_ran(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    import multigpu_report
    import train_fsdp

    assert train_fsdp.engine("configs/accelerate/deepspeed_zero3.yaml") == "zero3"
    assert train_fsdp.engine("configs/accelerate/fsdp.yaml") == "fsdp"
    (tmp_path / "train").mkdir()
    assert not multigpu_report.training(tmp_path, "zero3")[1]  # missing parts: no efficiency
    for n, rate, losses in ((1, 100.0, [2.0, 1.5]), (2, 190.0, [2.01, 1.5])):
        row = {"nprocs": n, "grad_accum": 2 // n, "global_batch": 2, "shape": "1b", "attn": "sdpa", "compile": False,
               "fsdp": False, "deepspeed": True, "steps": 2, "warmup": 0, "tokens_per_s": rate,
               "window_mean_tokens_per_s": rate, "tokens_per_step": 10.0, "losses": losses,
               "step_durations": [10 / rate, 10 / rate], "step_tokens": [10, 10], "peak_mem_gib": [1.0] * n, "pack": 8}
        (tmp_path / f"train/zero3_{n}.json").write_text(json.dumps(row))
    lines, eff, match = multigpu_report.training(tmp_path, "zero3")
    assert eff == pytest.approx(190 / 200) and match is True  # 2.01 vs 2.0: 5e-3 relative, within 2e-2
    text = "\n".join(lines)
    assert "DeepSpeed ZeRO-3" in text and "DeepSpeed active: 1 process True, 2 processes True" in text
    assert "**Scaling efficiency (2-GPU tokens/s / (2 x 1-GPU)): 0.950**" in text
    out = _run([sys.executable, str(BENCH / "multigpu_report.py"), "--results", str(tmp_path), "--out",
                str(tmp_path / "m.md")], tmp_path)
    assert "## Training: DeepSpeed ZeRO-3" in out and "## Training: FSDP2" in out
    assert out.strip().splitlines()[-1].endswith(" zero3_efficiency: 0.950 zero3_losses_match: yes")
    (tmp_path / "train/zero3_1.json").unlink()
    (tmp_path / "train/zero3_2.json").unlink()
    out = _run([sys.executable, str(BENCH / "multigpu_report.py"), "--results", str(tmp_path), "--out",
                str(tmp_path / "m.md")], tmp_path)
    assert "ZeRO-3" not in out
