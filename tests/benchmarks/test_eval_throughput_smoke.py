"""benchmarks/eval_throughput.py at smoke size on CPU: both paths on the real embedded model.

In float32 on the CPU the packed path gives model.generate's texts exactly, so the benchmark must
report every item identical and a zero score difference; the FLOP count must match the formula.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from test_benchmarks_smoke import _run  # noqa: E402

FACTS = [("the vault code", "4417"), ("the ship's name", "Marigold"), ("the meeting day", "Thursday")]


def test_eval_throughput_runs_tiny_and_reports_identical_texts(tmp_path: Path) -> None:
    filler = "The river ran slowly past the mill, and the miller counted sacks of grain. "
    items = []
    for k, (what, value) in enumerate(FACTS):
        text = filler * (3 + 4 * k) + f"Remember: {what} is {value}. " + filler * 2
        items.append({"id": f"t{k}", "task": "niah_single", "prompt": f"{text}\nWhat is {what}?",
                      "answers": [value], "metric": "all_substring", "max_new_tokens": 6})
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    out = _run([sys.executable, str(ROOT / "benchmarks" / "eval_throughput.py"), "--items", str(path), "--device", "cpu",
                "--dtype", "float32", "--limit", "3", "--prefill-tokens", "200", "--max-rows", "2",
                "--profile", "1", "--reference-batch-size", "1", "--out", str(tmp_path / "r.json")], tmp_path, timeout=600)
    assert "Self CPU" in out  # the profile's table
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"eval_seconds: ([\d.]+) baseline_seconds: ([\d.]+) limit_seconds: ([\d.]+) identical: ([\d.]+)", last)
    assert m, last
    assert float(m.group(4)) == 1.0
    row = json.loads((tmp_path / "r.json").read_text())
    assert row["items"] == 3 and row["score_difference"]["mean"] == 0.0
    assert row["packed"]["failed"] == 0 and row["generate"]["failed"] == 0
    assert row["generate_other_batch"]["batch_size"] == 1  # the default path against itself: 3 rows a batch vs 1
    assert row["generate_other_batch"]["identical_to_generate"] == 1.0
    phases = row["packed"]["phases"]  # 3 rows, at most 2 a wave: 2 waves, each with a prefill and a decoding
    assert phases["waves"] == 2 and phases["prefill_s"] > 0 and phases["decode_s"] > 0 and phases["steps"] > 0
    assert 0 < phases["encode_s"] < row["packed"]["seconds"]  # the timed run's own prompt encoding
    # 2 x non-embedding params x tokens is most of the work at these lengths; attention adds to it
    tokens = row["prompt_tokens"] + row["generated_tokens"]
    assert row["flop"] > 2 * row["non_embedding_params"] * tokens
    assert row["non_embedding_params"] < 135_000_000


def test_decode_attention_benchmark_runs_tiny_and_checks_each_kernel(tmp_path: Path) -> None:
    """benchmarks/decode_attention.py on CPU: the CPU's kernels agree with the float64 reference, every wave
    reports its phases, and the last line names the fastest kernel."""
    out = _run([sys.executable, str(ROOT / "benchmarks" / "decode_attention.py"), "--device", "cpu", "--smoke",
                "--out", str(tmp_path / "d.json")], tmp_path, timeout=300)
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"best_decode_kernel: (\w+) decode_ms_per_step: ([\d.]+) prefill_tokens_per_s: (\d+)", last)
    assert m and m.group(1) in ("sdpa", "bmm"), last
    row = json.loads((tmp_path / "d.json").read_text())
    assert {k["kernel"] for k in row["kernels"]} == {"sdpa", "bmm"}
    assert all(k["rel_error"] < 1e-5 for k in row["kernels"])  # float32 on the CPU
    assert all(w["steps"] == w["budget"] - 1 and w["prefill_s"] > 0 for w in row["waves"])
    assert [p["prefill_tokens"] for p in row["prefill"]] == [200, 400]
    ran = [k for k in row["prefill_kernels"] if "ms" in k]  # the CPU's dense SDPA backends, GQA native and expanded
    assert {k["kernel"] for k in ran} >= {"sdpa_math_dense", "sdpa_math_dense_kv_expanded", "ctxsynth_dense",
                                          "per_prompt_sdpa_grid_lengths", "ctxsynth_dense_grid_lengths"}
    assert all(k["rel_diff"] < 1e-5 and k["repeat_equal"] for k in ran)
    assert len({k["digest"] for k in ran if k["kernel"].startswith("sdpa_math")}) == 1  # same bits: same digest
    one, spread = row["dense_wrapper"]  # the dense path's own cost: a view at one length, padded at the spread
    assert (one["padded_groups"], spread["padded_groups"]) == (0, 1) and one["ms"] > 0 and spread["ms"] > 0


def test_throughput_gpu_script_runs_its_steps_tiny_on_the_cpu(tmp_path: Path) -> None:
    """benchmarks/throughput_gpu.sh (issue 23's GPU call) at smoke size: the kernel digests compared across two
    processes, SmolLM2 through both prefill kernels (float32 on the CPU: the same texts as model.generate), the
    generation benchmark twice, one archive."""
    import tarfile

    items = [{"id": f"t{k}", "task": "niah_single", "prompt": f"Remember: {what} is {value}.\nWhat is {what}?",
              "answers": [value], "metric": "all_substring", "max_new_tokens": 5} for k, (what, value) in enumerate(FACTS)]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    env = {"SMOKE": "1", "DEVICE": "cpu", "DTYPE": "float32", "LIMIT": "2", "GEN_N": "2", "GEN_TOKENS": "4",
           "SMOLLM2_ITEMS": str(path), "OUT": str(tmp_path / "out"), "PY": sys.executable}
    out = _run(["bash", str(ROOT / "benchmarks" / "throughput_gpu.sh"), "kernels", "smollm2", "generate", "pack"], ROOT,
               env, timeout=900)
    assert re.search(r"ctxsynth_dense .* same bits in both processes: True", out), out
    assert re.search(r"identical texts, \S+smollm2_varlen.jsonl vs \S+smollm2_dense.jsonl: 2/2", out), out
    assert re.search(r"identical texts, model.generate vs \S+smollm2_dense.jsonl: 2/2", out), out
    assert "generate: same texts in both processes" in out
    with tarfile.open(tmp_path / "out" / "throughput.tar") as tar:
        names = set(tar.getnames())
    assert {"throughput/kernels_2.json", "throughput/smollm2_dense.json", "throughput/generate_1.json"} <= names


def test_tokenize_only_gives_the_same_ids_when_the_eval_tokenizes_once(tmp_path: Path) -> None:
    """--tokenize-only: no model, the runner's fit and the backend's encoding with and without the shared ids."""
    filler = "The river ran slowly past the mill, and the miller counted sacks of grain. "
    rows = [{"id": f"t{k}", "task": "qa", "prompt": filler * (5 + 40 * k) + "What did the miller count?",
             "answers": ["sacks"], "metric": "qa_f1", "max_new_tokens": 8} for k in range(3)]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _run([sys.executable, str(ROOT / "benchmarks" / "eval_throughput.py"), "--items", str(path), "--tokenize-only",
                "--max-model-len", "1024", "--out", str(tmp_path / "t.json")], tmp_path, timeout=300)
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"tokenize_seconds: ([\d.]+) separate_seconds: ([\d.]+) identical: ([\d.]+)", last)
    assert m, last
    assert float(m.group(3)) == 1.0  # the last prompt is cut to fit 1,024 tokens: encoded again, same ids
    row = json.loads((tmp_path / "t.json").read_text())
    assert row["items"] == 3 and row["shared"]["failed"] == 0 and 0 < row["prompt_tokens"] < 3 * 1024
