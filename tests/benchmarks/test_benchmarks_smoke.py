"""Every script under benchmarks/ runs with tiny arguments, so none can rot unnoticed.

Each Python benchmark runs as its own process (as a user runs it) and must print its headline
figure; the GPU shell script is syntax-checked and dry-run with an `echo` in place of the CLI, and
every verb and config file it names must exist.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
# a script added to benchmarks/ without a smoke test here fails test_every_benchmark_has_a_smoke_test
SMOKED = {"assemble.py", "reliance_auc.py", "reliance_rank.py", "train_throughput.py", "smollm2_gpu.sh", "pilot.py",
          "pilot_report.py", "pilot.sh", "trl_exports.py", "client.py", "scale.py", "stage_memory.py"}
SMOKED |= {"multigpu.sh", "multigpu_generate.py", "multigpu_report.py", "train_fsdp.py"}  # test_multigpu_smoke.py
SMOKED |= {"table3.py", "table3.sh", "table3_report.py"}
SMOKED |= {"eval_throughput.py", "decode_attention.py", "throughput_gpu.sh"}  # test_eval_throughput_smoke.py
SMOKED |= {"table3_v2_inputs.py", "table3_v2.sh", "table3_v2_report.py"}  # tests/benchmarks/test_table3_v2.py
SMOKED |= {"ruler_gpu.sh", "ruler_report.py"}  # tests/eval/test_ruler_benchmark.py
SMOKED |= {"pilot32k.sh", "pilot32k_report.py"}  # tests/benchmarks/test_pilot32k_report.py
SMOKED |= {"carry_model.py"}  # tests/test_embedded_models.py (split and join round trip)
SMOKED |= {"gpu_setup.sh"}  # tests/benchmarks/test_gpu_setup.py
# smoke-tested elsewhere: trl_exports.py in tests/export/test_trl_exports_benchmark.py, client.py in
# tests/llm/test_client_benchmark.py, stage_memory.py in tests/benchmarks/test_stage_memory_smoke.py
SHELL = {p for p in SMOKED if p.endswith(".sh")}


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(env or {})}
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_every_benchmark_has_a_smoke_test() -> None:
    shipped = {p.name for p in BENCH.iterdir() if p.suffix in (".py", ".sh")}
    assert shipped == SMOKED


def test_assemble_benchmark_runs_tiny(tmp_path: Path) -> None:
    out = _run([sys.executable, str(BENCH / "assemble.py"), "--samples", "4", "--pool", "30", "--target", "1024",
                "--naive-samples", "1", "--audit", "4"], tmp_path)
    assert re.search(r"^speedup: [\d.]+x within_budget: 4/4$", out, re.M), out
    assert "audit: 4/4" in out


def test_scale_benchmark_runs_tiny(tmp_path: Path) -> None:
    out = _run([sys.executable, str(BENCH / "scale.py"), "--records", "200", "--shard-size", "50", "--workers", "2"],
               tmp_path, timeout=400)
    assert re.search(r"^n=20 workers=1 .*records_per_s=\d+", out, re.M), out
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"records: 200 rss_ratio: [\d.]+ peak_rss_mb: \d+ worker_speedup: [\d.]+", last), out


def test_reliance_benchmark_runs_tiny(tmp_path: Path) -> None:
    out = _run([sys.executable, str(BENCH / "reliance_auc.py"), "--n", "2", "--score-first", "1", "--cache-dir", "",
                "--resamples", "50"], tmp_path, timeout=600)
    assert re.search(r"^auc: [\d.]+ n: 2 baseline_auc: [\d.]+ baseline: (containment|bm25)$", out, re.M), out
    for score in ("reliance", "question", "reliance+question", "containment", "bm25"):
        assert f"| {score} | " in out, out
    # an answer pasted into unrelated text ties with the real context under containment: AUC exactly 0.5
    assert re.search(r"^\| containment \| [\d.]+ \[[\d.]+, [\d.]+\] \(n=\d\) \| [\d.]+ .*\| 0\.500 \[0\.500, 0\.500\]", out, re.M), out


def test_reliance_rank_benchmark_runs_tiny(tmp_path: Path) -> None:
    from ctxsynth.records import Seed, Synthesized, to_dict

    facts = [("Who built the mill?", "Ada Berg", "The mill on the river was built by Ada Berg in 1840."),
             ("Which year did the bridge open?", "1902", "The stone bridge over the Lune opened in 1902."),
             ("What colour was the ferry?", "green", "The old ferry to the island was painted green.")]
    unrelated = "Rain fell on the coast for most of the week and the markets closed early."
    paths = []
    for name, with_context in (("grounded", True), ("ungrounded", False)):
        rows = [to_dict(Synthesized(f"{name}{i}", "qa", Seed(f"{name}{i}", "qa", q, a), c if with_context else unrelated,
                                    {}, {}, [])) for i, (q, a, c) in enumerate(facts)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(f"{name}={tmp_path / f'{name}.jsonl'}")
    (tmp_path / "gaps.json").write_text(json.dumps({"grounded": {"a": 0.2, "b": 0.4}, "ungrounded": 0.01}))
    out = _run([sys.executable, str(BENCH / "reliance_rank.py"), "--dataset", *paths[:1], "--dataset", paths[1],
                "--gaps", str(tmp_path / "gaps.json"), "--cache-dir", "", "--resamples", "50"], tmp_path)
    assert "| grounded | 3 of 3 | " in out and "| 0.30 [0.20, 0.40] (2) |" in out, out
    assert re.search(r"^spearman: -?[\d.]+ datasets: 2$", out, re.M), out

    # gaps from two predictions files per dataset (x100), only the records in the training file, a sample
    for name, scores in (("with", {"a": 1.0, "b": 0.5}), ("without", {"a": 0.5, "b": 0.5}), ("flat", {"a": 0.2, "b": 0.2})):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"id": i, "score": v}) + "\n" for i, v in scores.items()))
    (tmp_path / "train.jsonl").write_text(json.dumps({"id": "grounded0", "messages": []}) + "\n"
                                          + json.dumps({"id": "grounded2", "messages": []}) + "\n")
    pred = {"grounded": f"{tmp_path / 'with.jsonl'},{tmp_path / 'without.jsonl'}",
            "ungrounded": f"{tmp_path / 'flat.jsonl'},{tmp_path / 'flat.jsonl'}"}
    out = _run([sys.executable, str(BENCH / "reliance_rank.py"), "--dataset", paths[0], "--dataset", paths[1],
                "--train-data", f"grounded={tmp_path / 'train.jsonl'}", "--limit", "1", "--question",
                *[a for n, spec in pred.items() for a in ("--predictions", f"{n}={spec}")],
                "--cache-dir", "", "--resamples", "50"], tmp_path)
    assert "| grounded | 1 of 2 | " in out and "| ungrounded | 1 of 3 | " in out, out
    assert "| 25.00 [0.00, 50.00] (2) |" in out and "| 0.00 [0.00, 0.00] (2) |" in out, out  # (50 + 0) / 2
    for score in ("reliance", "question", "containment", "bm25", "records"):
        assert re.search(rf"^\| {score} \| (grounded|ungrounded) > ", out, re.M), out
    assert "smallest possible 1.000" in out, out  # 2 datasets: 2/2! = 1, no ranking can be significant


def test_train_throughput_runs_the_tiny_shape_on_cpu(tmp_path: Path) -> None:
    env = {"BENCH_DEVICE": "cpu", "BENCH_PACK": "512", "CUDA_VISIBLE_DEVICES": ""}
    out = _run([sys.executable, str(BENCH / "train_throughput.py"), "--out", str(tmp_path / "out"), "--runs",
                "tiny:ctxsynth:sdpa", "--steps", "1", "--warmup", "1", "--timeout", "240"], tmp_path, env, timeout=300)
    report = (tmp_path / "out" / "train_throughput.md").read_text()
    assert "| tiny | ctxsynth | sdpa |" in report, out + report


def test_gpu_shell_script_parses_and_names_real_verbs_and_configs(tmp_path: Path) -> None:
    script = BENCH / "smollm2_gpu.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    out = _run(["bash", str(script), "all"], tmp_path, {"CTX": "echo ctxsynth"})
    commands = [shlex.split(line) for line in out.splitlines() if line.startswith("ctxsynth ")]
    assert {c[1] for c in commands} == {"niah", "eval", "train", "compare"}, out
    from typer.main import get_command

    from ctxsynth.cli import app

    verbs = set(get_command(app).commands)  # type: ignore[attr-defined]
    assert {c[1] for c in commands} <= verbs
    configs = [arg for c in commands for arg in c[2:] if arg.startswith("configs/")]
    assert len(configs) >= 4 and all((ROOT / c).is_file() for c in configs), configs


@pytest.mark.parametrize("script", sorted(SMOKED - SHELL))
def test_benchmarks_use_no_private_names_of_the_library(script: str) -> None:
    text = (BENCH / script).read_text()
    assert not re.search(r"from ctxsynth[\w.]* import [^\n]*\b_[a-z]", text)
    private = {m for m in re.findall(r"\b(?:assembler|scorer|backend|config)\._[a-z]\w*", text)}
    assert not private, private


H200 = ROOT / "docs/results/smollm2_h200"


def test_pilot_report_gives_paired_intervals_on_the_shipped_predictions(tmp_path: Path) -> None:
    out = _run([sys.executable, str(BENCH / "pilot_report.py"), "--out", str(tmp_path),
                "--grid", f"base={H200 / 'base_predictions.jsonl.gz'}", f"sft3={H200 / 'sft3_predictions.jsonl.gz'}"], tmp_path)
    rows = json.loads((tmp_path / "results.json").read_text())
    diff = next(r for r in rows if r.get("a") == "sft3" and r["variant"] == "single")
    # single NIAH at 8k: 43/100 base, 80/100 tuned (docs/results/smollm2_h200/README.md) -> +37
    assert diff["cells"]["at 8k"]["mean"] == 37.0 and diff["cells"]["at 8k"]["n"] == 100
    assert diff["cells"]["at 8k"]["low"] > 0
    assert "builtin_hotpotqa" in out and (tmp_path / "accuracy_vs_length.png").stat().st_size > 10_000


def test_pilot_general_rows_are_short_squad_messages(tmp_path: Path) -> None:
    target = tmp_path / "general.jsonl"
    _run([sys.executable, str(BENCH / "pilot.py"), "general", str(target), "--n", "5"], tmp_path)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 5
    for row in rows:
        user, assistant = row["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert assistant["content"] and "Question:" in user["content"]


def test_pilot_script_dry_run_names_real_verbs_and_configs(tmp_path: Path) -> None:
    script = BENCH / "pilot.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    out = _run(["bash", str(script), "sft4", "sft3-s1", "report"], ROOT, {"DRY": "1"})
    assert "train configs/experiments/pilot/train.yaml output_dir=runs/pilot/train/sft4" in out
    assert "data.train_files=[runs/pilot/niah/sft4/export/trl_messages/data.jsonl] seed=42 data.shuffle_seed=0" in out
    assert "data.train_files=[runs/pilot/niah/sft3/export/trl_messages/data.jsonl] seed=1 data.shuffle_seed=1" in out
    assert "name=pilot-sft4-needle" in out and "pilot_report.py" in out
    configs = [arg for line in out.splitlines() for arg in line.split() if arg.startswith("configs/")]
    assert len(configs) >= 3 and all((ROOT / c).is_file() for c in configs), configs


PILOT = ROOT / "docs/results/pilot_smollm2/predictions"


def test_table3_report_reads_saved_arms_and_pairs_them(tmp_path: Path) -> None:
    """The pilot's shipped predictions stand in for two arms (their HotpotQA rows are the same 200
    held-out items): general = SFT1, human = SFT3, packed as table3.sh saves them (one .tgz per arm)."""
    import shutil
    import tarfile

    src = tmp_path / "src"
    for arm, pilot in (("general", "sft1"), ("human", "sft3")):
        folder = tmp_path / "tree" / "runs" / "eval" / f"table3-{arm}"
        folder.mkdir(parents=True)
        shutil.copy(PILOT / f"{pilot}-grid.jsonl.gz", folder / "predictions.jsonl.gz")
        src.mkdir(exist_ok=True)
        with tarfile.open(src / f"arm-{arm}.tgz", "w:gz") as tar:
            tar.add(folder, arcname=f"runs/eval/table3-{arm}")
    out = _run([sys.executable, str(BENCH / "table3_report.py"), "--src", str(src), "--out", str(tmp_path / "out")], tmp_path)
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    scores = {r["arm"]: r["cells"]["hotpotqa"] for r in rows if r["table"] == "scores"}
    # docs/results/pilot_smollm2/results.md: HotpotQA SFT1 22.1 [17.0, 27.4], SFT3 25.5 [20.0, 31.1], n = 200
    assert (scores["general"]["mean"], scores["general"]["n"]) == (pytest.approx(22.1, abs=0.05), 200)
    assert scores["human"]["mean"] == pytest.approx(25.45, abs=0.01)  # 25.5 rounded
    diff = next(r for r in rows if r["table"] == "vs_general" and r["a"] == "human")["cells"]["hotpotqa"]
    assert diff["mean"] == pytest.approx(scores["human"]["mean"] - scores["general"]["mean"], abs=0.02)
    assert diff["low"] < diff["mean"] < diff["high"] and diff["n"] == 200
    assert "general data only" in out and (tmp_path / "out" / "table3.png").stat().st_size > 10_000
    assert "## Coherence diagnostic" in (tmp_path / "out" / "README.md").read_text()


def test_table3_seed_split_cap_and_twin(tmp_path: Path) -> None:
    general = tmp_path / "general.jsonl"
    _run([sys.executable, str(BENCH / "pilot.py"), "general", str(general), "--n", "20"], tmp_path)
    out = _run([sys.executable, str(BENCH / "table3.py"), "seeds", str(tmp_path), "--n", "10", "--writer-n", "20",
                "--general", str(general)], tmp_path)
    assert "10 experiment seeds, 20 writer triples (disjoint)" in out
    seeds = [json.loads(line) for line in (tmp_path / "seeds.jsonl").read_text().splitlines()]
    writer = [json.loads(line) for line in (tmp_path / "writer_seeds.jsonl").read_text().splitlines()]
    general_ids = {json.loads(line)["meta"]["seed_id"] for line in general.read_text().splitlines()}
    assert [s["meta"]["dataset"] for s in seeds].count("squad_v2") == 5
    assert not {s["id"] for s in seeds} & ({s["id"] for s in writer} | general_ids)
    squad_titles = {s["meta"]["title"] for s in seeds if s["meta"]["dataset"] == "squad_v2"}
    assert not squad_titles & {s["meta"]["title"] for s in writer if s["meta"]["dataset"] == "squad_v2"}
    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": "word " * 50},
                                           {"role": "assistant", "content": "yes"}]} for i in range(10)]
    (tmp_path / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    free = [{"id": r["id"], "messages": [{"role": "user", "content": "Q?"}, r["messages"][1]]} for r in rows]
    (tmp_path / "free.jsonl").write_text("".join(json.dumps(r) + "\n" for r in free))
    out = _run([sys.executable, str(BENCH / "table3.py"), "cap", str(tmp_path / "long.jsonl"), str(tmp_path / "cap.jsonl"),
                "--tokens", "160"], tmp_path)
    # 52 tokens a row in SmolLM2's tokenizer ("word " x 50 is 51 tokens, "yes" 1): 3 rows fit in 160, 4 do not
    assert re.search(r"^cap: 3/10 rows, 156 tokens \(budget 160\)", out, re.M), out
    _run([sys.executable, str(BENCH / "table3.py"), "twin", str(tmp_path / "cap.jsonl"), str(tmp_path / "free.jsonl"),
          str(tmp_path / "twin.jsonl")], tmp_path)
    kept = [json.loads(line)["id"] for line in (tmp_path / "cap.jsonl").read_text().splitlines()]
    twin = [json.loads(line) for line in (tmp_path / "twin.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in twin) == sorted(kept) and all(r["messages"][0]["content"] == "Q?" for r in twin)


def test_table3_script_dry_run_names_real_verbs_and_configs(tmp_path: Path) -> None:
    script = BENCH / "table3.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    for name in ("configs", "benchmarks"):  # a clean tree: no runs/table3 from an earlier run skips a step
        (tmp_path / name).symlink_to(ROOT / name)
    out = _run(["bash", "benchmarks/table3.sh", "inputs", "gen", "arms1", "arms2", "report"], tmp_path, {"DRY": "1"})
    assert "writer-data configs/experiments/table3/writer_data.yaml" in out
    assert "run configs/experiments/table3/cs_writer.yaml llm.options.device=cuda" in out
    for arm in ("general", "niah", "instruction", "instruction_nc", "cs_smollm2", "cs_smollm2_nc", "cs_writer",
                "cs_writer_nc", "human", "human_nc", "cs_smollm2_d1", "cs_smollm2_d5"):
        assert f"train configs/experiments/table3/arm_{arm}.yaml" in out
        assert f"name=table3-{arm} model.model=runs/table3/train/{arm}/final" in out
    configs = [arg for line in out.splitlines() for arg in line.split() if arg.startswith("configs/")]
    assert len(configs) >= 20 and all((ROOT / c).is_file() for c in configs), configs
