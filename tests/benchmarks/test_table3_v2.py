"""Table 3 v2's scripts: the split (tiny build and the committed one re-checked), the arms' budget
helpers, the GPU script's commands, and the report's statistics on a fixture with planted effects."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ctxsynth.experiments.split import LeakageError, Unit, check_split, find_overlaps

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
DATA = ROOT / "docs" / "results" / "table3_v2" / "data"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(env or {})}
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _gz(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---- the split -----------------------------------------------------------------------------------------

def test_tiny_split_builds_every_role_and_passes_the_check(tmp_path: Path) -> None:
    out = _run([sys.executable, str(BENCH / "table3_v2_inputs.py"), "split", str(tmp_path / "in"), "--tiny",
                "--commit", str(tmp_path / "commit")], tmp_path, timeout=600)
    assert out.strip().splitlines()[-1].endswith("overlaps 0"), out
    counts = json.loads(out.strip().splitlines()[-2])
    assert counts["max_squad_questions_per_article"] <= 2 and counts["seeds_hotpotqa"] >= 12
    question_rows = [json.loads(x) for x in (tmp_path / "in" / "writer_question.jsonl").read_text().splitlines()]
    context_rows = [json.loads(x) for x in (tmp_path / "in" / "writer_context.jsonl").read_text().splitlines()]
    assert [r["id"] for r in question_rows] == [r["id"] for r in context_rows]  # the same triples, both directions
    assert question_rows[0]["messages"][-1]["content"].startswith("Question: ")
    assert context_rows[0]["messages"][-1]["content"].startswith("Context: ")
    index = _gz(tmp_path / "commit" / "tests_index.jsonl.gz")
    assert all("prompt" not in r and len(r["prompt_sha256"]) == 64 for r in index)
    assert {r["meta"]["column"] for r in index} >= {"hotpotqa_real", "hotpotqa_8k", "squad_2k", "niah_2k"}
    squad = [r for r in index if r["meta"]["family"] == "squad"]
    assert all(r["meta"]["filler"] == "wiki" for r in squad)


def _split_units() -> dict[str, list[Unit]]:
    """The committed split's roles rebuilt from the built-in data by id (not from the build's own units)."""
    from ctxsynth.experiments.split import unit_from_seed
    from ctxsynth.records import Seed
    from ctxsynth.seeds.builtin import hotpotqa_source, squad_source
    from ctxsynth.seeds.config import SeedsConfig

    split = _gz(DATA / "split.json.gz")[0]
    seeds = {c.item.id: c.item for read, source in ((squad_source, "squad"), (hotpotqa_source, "hotpotqa"))
             for c in read(SeedsConfig(source=source)) if isinstance(c.item, Seed)}
    roles = {role: [unit_from_seed(seeds[i]) for i in split["ids"][role]] for role in ("seeds", "writer", "general", "filler")}
    from ctxsynth import assets

    records = {r["_id"]: r for r in json.loads(assets.ruler_json("hotpotqa.json").read_text(encoding="utf-8"))}
    squad = {qa["id"]: (a["title"], p["context"], qa["question"]) for a in
             json.loads(assets.ruler_json("squad.json").read_text(encoding="utf-8"))["data"]
             for p in a["paragraphs"] for qa in p["qas"]}
    paragraphs = {t: "".join(s).strip() for r in records.values() for t, s in r["context"]}
    tests: dict[str, list[Unit]] = {"test_hotpotqa": [], "test_squad": []}
    for item in _gz(DATA / "tests_index.jsonl.gz"):
        meta = item["meta"]
        if meta["family"] == "hotpotqa":
            titles = tuple(meta["passages"])
            tests["test_hotpotqa"].append(Unit(item["id"], paragraphs=tuple(paragraphs[t] for t in titles), titles=titles,
                                               questions=(records[meta["question_id"]]["question"],)))
        elif meta["family"] == "squad":
            title, context, question = squad[meta["question_id"]]
            tests["test_squad"].append(Unit(item["id"], paragraphs=(context,), questions=(question,), articles=(title,)))
    return {**roles, **tests}


@pytest.mark.skipif(not (DATA / "split.json.gz").exists(), reason="the split is not committed yet")
def test_the_committed_split_has_no_overlap_and_the_design_sizes() -> None:
    roles = _split_units()
    report = check_split(roles, test_roles=["test_hotpotqa", "test_squad"])
    assert report.counts["seeds"] >= 1000 and len(roles["test_hotpotqa"]) >= 800 and len(roles["test_squad"]) >= 300
    per_article: dict[str, int] = {}
    for unit in roles["seeds"]:
        for article in unit.articles:
            per_article[article] = per_article.get(article, 0) + 1
    assert max(per_article.values()) <= 20
    # the check is not vacuous on these units: a seed paragraph put into the general rows is found
    leaked = {**roles, "general": [*roles["general"], roles["seeds"][0]]}
    assert {o.kind for o in find_overlaps(leaked, ["test_hotpotqa", "test_squad"]).overlaps} >= {"paragraph", "question"}


def test_the_check_finds_the_first_versions_leak_in_its_own_general_rows_and_seeds() -> None:
    """benchmarks/pilot.py general + benchmarks/table3.py seeds, as the first Table 3 ran them: issue 27
    counted 136 of the 150 SQuAD seeds (64 of their 67 paragraphs) verbatim in the general rows."""
    from ctxsynth.experiments.split import unit_from_seed
    from ctxsynth.records import Seed
    from ctxsynth.seeds.builtin import squad_source
    from ctxsynth.seeds.config import SeedsConfig

    general_ids = {r["meta"]["seed_id"] for r in _module("pilot").general_rows(1000, 0)}
    seeds, _ = _module("table3").split_seeds(300, 1000, general_ids)
    squad = {c.item.id: c.item for c in squad_source(SeedsConfig(source="squad")) if isinstance(c.item, Seed)}
    squad_seeds = [unit_from_seed(s) for s in seeds if s.meta["dataset"] == "squad_v2"]
    report = find_overlaps({"general": [unit_from_seed(squad[i]) for i in general_ids], "seeds": squad_seeds})
    shared = {o.key for o in report.overlaps if o.kind == "paragraph"}
    assert (len(squad_seeds), len(shared)) == (150, 64)
    assert sum(bool(u.keys("paragraph") & shared) for u in squad_seeds) == 136
    with pytest.raises(LeakageError):
        check_split({"general": [unit_from_seed(squad[i]) for i in general_ids], "seeds": squad_seeds})


# ---- the arms' budget helpers --------------------------------------------------------------------------------

def _row(i: int, words: int, answer: str = "yes") -> dict[str, Any]:
    return {"id": f"r{i}", "messages": [{"role": "user", "content": "word " * words}, {"role": "assistant", "content": answer}]}


def test_take_to_budget_never_passes_it_and_fills_with_smaller_rows() -> None:
    inputs = _module("table3_v2_inputs")
    count = inputs.TokenCount()
    rows = [_row(i, 50) for i in range(5)] + [_row(9, 10)]  # 52 and 12 tokens
    kept, tokens = inputs.take_to_budget(rows, 180, count, None)
    assert tokens == 52 * 3 + 12 and [r["id"] for r in kept] == ["r0", "r1", "r2", "r9"]  # skips what does not fit
    kept, tokens = inputs.take_to_budget(rows, 180, count, None, already=170)
    assert tokens == 0  # 10 left: nothing fits


def test_permuted_rows_shuffle_the_gold_across_pairs_and_never_give_one_its_answer() -> None:
    inputs = _module("table3_v2_inputs")
    docs = {"a": "Ada built the green mill in 1840.", "b": "The bridge opened in 1902.", "c": "The ferry was green."}
    answers = {"a": "1840", "b": "1902", "c": "green"}
    samples = []
    for key, doc in docs.items():
        user = f"Distractor text.\n\n{doc}\n\nQuestion: q{key}?"
        start = user.index(doc)
        samples.append({"id": key, "seed_id": key, "task": "qa", "answer": answers[key], "gold_char_span": [start, start + len(doc)],
                        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answers[key]}]})
    rows = inputs.permuted_rows(samples)
    assert len(rows) == 3
    for row in rows:
        user = row["messages"][0]["content"]
        assert docs[row["id"]] not in user and answers[row["id"]] not in user  # gold removed
        assert user.startswith("Distractor text.") and user.endswith(f"Question: q{row['id']}?")
        assert row["meta"]["permuted_from"] != row["id"]
    assert sorted(r["meta"]["permuted_from"] for r in rows) == ["a", "b", "c"]  # every gold used once: a shuffle
    assert next(r for r in rows if r["id"] == "c")["meta"]["permuted_from"] == "b"  # a's document holds "green"


# ---- the GPU script ---------------------------------------------------------------------------------------

def test_gpu_script_dry_run_names_real_verbs_and_configs(tmp_path: Path) -> None:
    subprocess.run(["bash", "-n", str(BENCH / "table3_v2.sh")], check=True)
    out = _run(["bash", str(BENCH / "table3_v2.sh"), "split", "writers", "gen", "prep", "arms", "all", "pack"], ROOT,
               {"DRY": "1", "CTX": "ctxsynth", "DEVICE": "cpu", "SEEDS": "1 2 3"})
    commands = [shlex.split(line) for line in out.splitlines() if line.startswith("ctxsynth ")]
    from typer.main import get_command

    from ctxsynth.cli import app

    verbs = set(get_command(app).commands)  # type: ignore[attr-defined]
    assert {c[1] for c in commands} == {"train", "run", "eval"} and {c[1] for c in commands} <= verbs
    configs = {arg for c in commands for arg in c[2:] if arg.startswith("configs/")}
    assert all((ROOT / c).is_file() for c in configs) and len(configs) >= 14, configs
    trains = [c for c in commands if c[1] == "train" and c[2].endswith("arm.yaml")]
    assert len(trains) == 17 * 3  # every arm x 3 seeds
    assert all("max_steps=S" in c for c in trains)  # one step count for every arm


# ---- the report ---------------------------------------------------------------------------------------------

def _fixture(folder: Path) -> None:
    """Real test ids and clusters (the committed index when present) with planted effects: cs is +25 points
    over is on QA items, human equals cs exactly, cs_nc is is, cs_perm is cs plus seed noise only."""
    rng = random.Random(0)
    if (DATA / "tests_index.jsonl.gz").exists():
        index = _gz(DATA / "tests_index.jsonl.gz")
        by_family: dict[str, list[dict[str, Any]]] = {}
        for r in index:
            by_family.setdefault(r["meta"]["family"], []).append(r)
        items = [r for rows in by_family.values() for r in rows[:30]]
    else:
        items = [{"id": f"{f}-{i}", "task": f, "meta": {"family": f, "column": f"{f}_x", "question_id": f"{f}{i // 2}"}}
                 for f in ("hotpotqa", "squad", "niah") for i in range(30)]
    base = {r["id"]: rng.random() * 0.5 for r in items}
    (folder / "predictions").mkdir(parents=True)
    for arm in ("general", "cs", "is", "human", "cs_nc", "cs_perm"):
        for seed in (1, 2, 3):
            rows = []
            for r in items:
                lift = 0.25 if arm in ("cs", "human", "cs_perm") and r["meta"]["family"] != "niah" else 0.0
                noise = rng.gauss(0, 0.01) if arm in ("cs_perm", "general") else 0.0
                rows.append({"id": r["id"], "task": r["task"], "score": base[r["id"]] + lift + noise, "meta": r["meta"]})
            text = "".join(json.dumps(x) + "\n" for x in rows)
            (folder / "predictions" / f"{arm}-s{seed}.jsonl.gz").write_bytes(gzip.compress(text.encode()))


def test_report_finds_the_planted_effects_and_not_the_null_one(tmp_path: Path) -> None:
    _fixture(tmp_path / "data")
    out = _run([sys.executable, str(BENCH / "table3_v2_report.py"), "--data", str(tmp_path / "data"), "--out",
                str(tmp_path / "out"), "--resamples", "400"], tmp_path)
    assert out.strip().splitlines()[-1] == "report: arms 6 runs 18 primary_rejected 3/4", out
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    verdicts = {(r["a"], r["b"]): r["rejected"] for r in result["primary"]}
    assert verdicts == {("cs", "is"): True, ("cs", "human"): True, ("cs", "cs_nc"): True, ("cs", "cs_perm"): False}
    cs_is = next(r for r in result["primary"] if r["b"] == "is")["estimate"]
    assert cs_is["mean"] == pytest.approx(25.0, abs=1e-6) and cs_is["low"] < 25.0 + 1e-6 <= cs_is["high"] + 1e-6
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "## Primary comparisons" in readme and "not shown" in readme
    assert (tmp_path / "out" / "table3_v2.png").stat().st_size > 5_000


def test_the_first_generations_runs_stand_beside_their_reruns_and_enter_no_table(tmp_path: Path) -> None:
    """data/gen1/ (runs whose training files were lost): the page lists each beside the same arm and seed
    of the committed generation, or 'not run yet'; the tables and tests use only predictions/."""
    data = tmp_path / "data"
    _fixture(data)
    (data / "gen1" / "predictions").mkdir(parents=True)
    for seed in (1, 2):  # both seeds 0.1 above their rerun: the arm's mean moved by -10 points
        rows = [{**r, "score": r["score"] + 0.1} for r in _gz(data / "predictions" / f"cs-s{seed}.jsonl.gz")]
        (data / "gen1" / "predictions" / f"cs-s{seed}.jsonl.gz").write_bytes(
            gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    (data / "predictions" / "is-s3.jsonl.gz").rename(data / "gen1" / "predictions" / "is-s3.jsonl.gz")
    out = _run([sys.executable, str(BENCH / "table3_v2_report.py"), "--data", str(data), "--out", str(tmp_path / "out"),
                "--resamples", "200"], tmp_path)
    assert out.strip().splitlines()[-1].startswith("report: arms 6 runs 17 "), out  # gen1 is not counted
    page = (tmp_path / "out" / "README.md").read_text()
    section = page[page.index("## The first generation's runs"):]
    cs = re.search(r"\| cs-s1 \| ([\d.]+) \| ([\d.]+) \|", section)
    assert cs and float(cs.group(1)) == pytest.approx(float(cs.group(2)) + 10.0, abs=0.051), section
    assert "| is-s3 |" in section and section.split("| is-s3 |")[1].split("\n")[0].endswith("| not run yet |")
    mean = re.search(r"\| cs, mean of seeds 1, 2 \| ([\d.]+) \| ([\d.]+) \|", section)
    assert mean and float(mean.group(1)) == pytest.approx(float(mean.group(2)) + 10.0, abs=0.051), section
    assert "generation 2 - generation 1: cs -10.0." in section and "is -" not in section  # is: one seed, no mean


def test_holm_adjustment_is_step_down_and_monotone() -> None:
    report = _module("table3_v2_report")
    assert report.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert report.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_report_refuses_runs_over_different_items(tmp_path: Path) -> None:
    _fixture(tmp_path / "data")
    path = tmp_path / "data" / "predictions" / "is-s2.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in _gz(path)[1:]).encode()))
    proc = subprocess.run([sys.executable, str(BENCH / "table3_v2_report.py"), "--data", str(tmp_path / "data"),
                           "--out", str(tmp_path / "out"), "--resamples", "50"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode != 0 and "not paired" in proc.stderr


@pytest.mark.slow
def test_tiny_chain_from_split_to_the_arms_on_cpu(tmp_path: Path) -> None:
    """split -> gen (the offline fake generator) -> prep (human, 7 ablation assemblies, arms): every arm's
    slot reaches the same budget, the budget rule fires (the fake writes no question-answer pairs)."""
    for name in ("configs", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {"TINY": "1", "DEVICE": "cpu", "CTX": f"{sys.executable} -m ctxsynth.cli", "PY": sys.executable}
    out = _run(["bash", str(BENCH / "table3_v2.sh"), "split", "gen", "prep"], tmp_path, env, timeout=1500)
    arms = json.loads((tmp_path / "runs" / "table3_v2" / "arms" / "arms.json").read_text())
    assert arms["budget"] == 10_000 and arms["available"]["is"] == 0, out[-2000:]  # B fell to the floor: no IS rows
    assert len(arms["arms"]) == 17 and {i["packs"] for i in arms["arms"].values()} <= {1, 2, 3}
    assert all(arms["budget"] - 300 <= i["slot_tokens"] <= arms["budget"] for i in arms["arms"].values())
    assert arms["arms"]["cs_perm"]["long_rows"] == arms["arms"]["cs"]["long_rows"]
    assert arms["arms"]["cs_d1"]["long_tokens"] <= arms["ablation_budget"] < arms["arms"]["cs"]["long_tokens"]


def test_report_collects_what_the_gpu_script_saved(tmp_path: Path) -> None:
    """Runs saved as table3_v2.sh saves them (eval folder with the slimmed predictions, the full file
    excluded; arms.json; synthesize shard markers) come back into --data without prompts."""
    import tarfile

    _fixture(tmp_path / "fixture")
    tree, saved = tmp_path / "tree", tmp_path / "saved"
    saved.mkdir()
    for path in sorted((tmp_path / "fixture" / "predictions").glob("*.jsonl.gz")):
        name = path.name.removesuffix(".jsonl.gz")
        folder = tree / "runs" / "table3_v2" / "eval" / f"table3-v2-{name}"
        folder.mkdir(parents=True)
        rows = [{**r, "prompt": "a long prompt " * 50} for r in _gz(path)]
        (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        _run([sys.executable, str(BENCH / "table3_v2_report.py"), "--slim", str(folder / "predictions.jsonl")], tmp_path)
        with tarfile.open(saved / f"run-{name}.tgz", "w:gz") as tar:
            tar.add(folder / "predictions.jsonl.gz", arcname=f"runs/table3_v2/eval/table3-v2-{name}/predictions.jsonl.gz")
    state = tree / "runs" / "table3_v2" / "pipe" / "table3-v2-cs" / "_state" / "synthesize"
    state.mkdir(parents=True)
    (state / "shard-00000.done").write_text(json.dumps({"n_in": 10, "n_out": 7, "dropped_truncated": 3}))
    with tarfile.open(saved / "gen-state.tgz", "w:gz") as tar:
        tar.add(state, arcname="runs/table3_v2/pipe/table3-v2-cs/_state/synthesize")
    out = _run([sys.executable, str(BENCH / "table3_v2_report.py"), "--src", str(saved), "--data", str(tmp_path / "data"),
                "--out", str(tmp_path / "out"), "--resamples", "200"], tmp_path)
    assert out.strip().splitlines()[-1].startswith("report: arms 6 runs 18 "), out
    copied = sorted((tmp_path / "data" / "predictions").glob("*.jsonl.gz"))
    assert len(copied) == 18 and all("prompt" not in r for r in _gz(copied[0]))
    assert "| table3-v2-cs | 10 | 7 | 70.0 | 3 (truncated 3) |" in (tmp_path / "out" / "README.md").read_text()


def test_restore_puts_an_earlier_calls_pack_back_on_a_fresh_machine(tmp_path: Path) -> None:
    """`pack` on one machine, `restore` on a fresh one: saved runs, the generation runs' stage markers,
    the pipeline outputs and arms/ come back at their paths, so `arms` skips what is done. A data file
    over PART_BYTES comes back in pieces no bigger than that (a GPU call returns files of <= 16 MiB)."""
    old, new = tmp_path / "old", tmp_path / "new"
    r = old / "runs" / "table3_v2"
    arm_rows = "".join(json.dumps({"text": random.Random(i).randbytes(64).hex()}) + "\n" for i in range(40))
    for path, text in {"saved/run-cs-s1.tgz": None, "arms/arms.json": '{"max_steps": 12}\n', "arms/cs.jsonl": arm_rows,
                       "pipe/table3-v2-cs/synth/part-00000.jsonl": "{}\n",
                       "pipe/table3-v2-cs/_state/synthesize/shard-00000.done": "{}\n"}.items():
        (r / path).parent.mkdir(parents=True, exist_ok=True)
        (r / path).write_text(text or "")
    subprocess.run(["tar", "czf", "runs/table3_v2/saved/gen-state.tgz", "runs/table3_v2/pipe/table3-v2-cs/_state"],
                   cwd=old, check=True)
    (r / "saved_data").mkdir()
    for name, paths in {"pipe-gen": ["runs/table3_v2/pipe/table3-v2-cs"], "arms": ["runs/table3_v2/arms"]}.items():
        subprocess.run(["tar", "cf", f"runs/table3_v2/saved_data/{name}.tar", "--exclude=_state", *paths], cwd=old, check=True)
    _run(["bash", str(BENCH / "table3_v2.sh"), "pack"], old, {"OUT": str(tmp_path / "returned"), "PART_BYTES": "2048"})
    returned = {p.name: p.stat().st_size for p in (tmp_path / "returned").iterdir()}
    pieces = [n for n in returned if n.startswith("table3_v2_data-arms.txz.part")]
    assert len(pieces) >= 2 and "table3_v2_data-arms.txz" not in returned, returned
    assert all(returned[n] <= 2048 for n in pieces) and "table3_v2_data-pipe-gen.txz" in returned
    (new / "benchmarks").mkdir(parents=True)
    out = _run(["bash", str(BENCH / "table3_v2.sh"), "restore", str(tmp_path / "returned")], new)
    back = new / "runs" / "table3_v2"
    assert (back / "saved" / "run-cs-s1.tgz").is_file() and (back / "arms" / "arms.json").read_text() == '{"max_steps": 12}\n'
    assert (back / "arms" / "cs.jsonl").read_text() == arm_rows
    assert (back / "pipe" / "table3-v2-cs" / "synth" / "part-00000.jsonl").is_file()
    assert (back / "pipe" / "table3-v2-cs" / "_state" / "synthesize" / "shard-00000.done").is_file(), out
    bad = subprocess.run(["bash", str(BENCH / "table3_v2.sh"), "restore", str(tmp_path / "nothing")], cwd=new,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no table3_v2_results.tgz" in bad.stderr


def test_the_committed_page_regenerates_from_the_committed_predictions(tmp_path: Path) -> None:
    """docs/results/table3_v2/README.md and results.json are what the report computes from data/ alone
    (the runs' predictions, arms.json, generation counts, runs.json), byte for byte."""
    _run([sys.executable, str(BENCH / "table3_v2_report.py"), "--data", str(DATA), "--out", str(tmp_path)], tmp_path)
    for name in ("README.md", "results.json"):
        assert (tmp_path / name).read_text() == (DATA.parent / name).read_text(), name


def test_a_failed_run_lets_the_rest_go_on_and_the_script_exit_non_zero(tmp_path: Path) -> None:
    """A run whose training fails is logged, later steps (pack) still run, and the script ends with exit 1
    naming it: a GPU call's caller sees failed work instead of a clean exit."""
    arms = tmp_path / "runs" / "table3_v2" / "arms"
    arms.mkdir(parents=True)
    (arms / "arms.json").write_text('{"max_steps": 3}\n')
    proc = subprocess.run(["bash", str(BENCH / "table3_v2.sh"), "run", "cs", "1", "pack"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "CTX": "false", "OUT": str(tmp_path / "out")})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "run cs-s1: training failed" in proc.stdout and "== pack" in proc.stdout
    assert "1 run(s) failed" in proc.stderr and "cs-s1: training failed" in proc.stderr
    assert (tmp_path / "out" / "table3_v2_results.tgz").is_file()


def test_restore_from_the_repository_gives_back_the_arms_files_the_runs_trained_on(tmp_path: Path) -> None:
    """The committed data/table3_v2_data-arms.txz is all `arms` needs beside the test items: restore puts
    every arm's file back and checks it against the sha256 prep recorded in arms.json; a changed file is
    named and restore fails."""
    (tmp_path / "benchmarks").mkdir()
    out = _run(["bash", str(BENCH / "table3_v2.sh"), "restore", str(DATA)], tmp_path, {"PY": sys.executable})
    arms = tmp_path / "runs" / "table3_v2" / "arms"
    summary = json.loads((arms / "arms.json").read_text())
    assert summary == json.loads((DATA / "arms.json").read_text())  # the report's copy is the one the runs used
    assert f"restore: {len(summary['arms'])} arm files match arms.json" in out
    kept = tmp_path / "runs" / "table3_v2" / "pipe" / "table3-v2-cs" / "synth"
    assert sum(len(_gz(p)) for p in kept.glob("shard-*.jsonl.gz")) == 861  # the kept contexts, generation.json's count
    with (arms / "cs_perm.jsonl").open("a") as f:
        f.write("{}\n")
    bad = subprocess.run(["bash", "-c", f"source <(sed -n '/^check_arms()/,/^}}/p' {BENCH / 'table3_v2.sh'}); "
                          f"R=runs/table3_v2 PY={sys.executable} check_arms"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode != 0 and "cs_perm" in bad.stderr and "cs " not in bad.stderr, bad.stderr


def test_a_run_whose_predictions_are_committed_is_not_run_again(tmp_path: Path) -> None:
    """A fresh machine with only the repository skips every run already in data/predictions (CTX=false
    would fail any training it started)."""
    (tmp_path / "data" / "predictions").mkdir(parents=True)
    (tmp_path / "data" / "predictions" / "cs-s1.jsonl.gz").write_bytes(gzip.compress(b"{}\n"))
    arms = tmp_path / "runs" / "table3_v2" / "arms"
    arms.mkdir(parents=True)
    (arms / "arms.json").write_text('{"max_steps": 3}\n')
    env = {**os.environ, "CTX": "false", "DATA": str(tmp_path / "data")}
    done = subprocess.run(["bash", str(BENCH / "table3_v2.sh"), "run", "cs", "1"], cwd=tmp_path, capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0 and "done already (committed)" in done.stdout, done.stdout + done.stderr
    other = subprocess.run(["bash", str(BENCH / "table3_v2.sh"), "run", "cs", "2"], cwd=tmp_path, capture_output=True,
                           text=True, env=env)
    assert other.returncode == 1 and "cs-s2: training failed" in other.stdout


def test_lanes_share_one_queue_and_each_run_is_started_once(tmp_path: Path) -> None:
    """Three lanes over tier 1 x 2 seeds: every arm x seed is claimed by exactly one lane (none twice, none
    lost), a committed run is skipped, and the failures of all lanes reach the exit status."""
    (tmp_path / "data" / "predictions").mkdir(parents=True)
    (tmp_path / "data" / "predictions" / "cs-s1.jsonl.gz").write_bytes(gzip.compress(b"{}\n"))
    arms = tmp_path / "runs" / "table3_v2" / "arms"
    arms.mkdir(parents=True)
    (arms / "arms.json").write_text('{"max_steps": 3}\n')
    env = {**os.environ, "CTX": "false", "DATA": str(tmp_path / "data"), "DEVICE": "cpu", "PER_GPU": "3",
           "SEEDS": "1 2"}
    proc = subprocess.run(["bash", str(BENCH / "table3_v2.sh"), "arms", "1"], cwd=tmp_path, capture_output=True,
                          text=True, env=env)
    logs = sorted((tmp_path / "runs" / "table3_v2" / "saved" / "logs").glob("lane*.log"))
    assert len(logs) == 3, logs
    started = [line.split()[2] + "-s" + line.split()[4] for p in logs for line in p.read_text().splitlines()
               if line.startswith("== run ")]
    tier1 = ["general", "cs", "is", "human", "cs_nc", "cs_perm"]
    assert sorted(started) == sorted(f"{a}-s{s}" for a in tier1 for s in (1, 2)), started
    assert proc.returncode == 1 and "11 run(s) failed" in proc.stderr, proc.stdout + proc.stderr
    assert "cs-s1" not in proc.stderr


def test_the_32k_trainee_runs_tier_1_on_the_same_arm_files_into_its_own_folders(tmp_path: Path) -> None:
    """TRAINEE=gemma3-270m: the same arm files and steps, the model swapped, the 16k/32k tests added to the
    evaluation in a 32k window, runs and committed predictions in their own folders; tier 2 is refused
    (the design repeats tier 1 only); an unknown trainee is an error."""
    env = {"DRY": "1", "CTX": "ctxsynth", "DEVICE": "cpu", "SEEDS": "1 2 3", "TRAINEE": "gemma3-270m"}
    out = _run(["bash", str(BENCH / "table3_v2.sh"), "split", "arms", "1", "pack", "report"], ROOT, env)
    assert "split runs/table3_v2/inputs --commit docs/results/table3_v2/data --long gemma3-270m" in out
    assert "tar cJf runs/table3_v2/tests_long.tar.xz runs/table3_v2/inputs/tests_long.jsonl" in out
    commands = [shlex.split(line) for line in out.splitlines() if line.startswith("ctxsynth ")]
    trains = [c for c in commands if c[1] == "train"]
    evals = [c for c in commands if c[1] == "eval"]
    assert len(trains) == len(evals) == 6 * 3
    assert all("model=gemma3-270m" in c and "max_steps=S" in c for c in trains)
    assert {a for c in trains for a in c if a.startswith("data.train_files=")} == {
        f"data.train_files=[runs/table3_v2/arms/{a}.jsonl]" for a in ("general", "cs", "is", "human", "cs_nc", "cs_perm")}
    assert all(any(a.startswith("output_dir=runs/table3_v2/gemma3-270m/train/") for a in c) for c in trains)
    for c in evals:
        assert "model.max_model_len=32768" in c and "model.tokenizer=gemma3-270m" in c
        assert "items=[runs/table3_v2/inputs/tests.jsonl.gz,runs/table3_v2/inputs/tests_long.jsonl]" in c
        assert "out_dir=runs/table3_v2/gemma3-270m/eval" in c
    assert "table3_v2_gemma3-270m_results.tgz" in out and "-C runs/table3_v2/gemma3-270m saved" in out
    report = next(line for line in out.splitlines() if "table3_v2_report.py --src" in line)
    assert "--data docs/results/table3_v2/gemma3-270m/data --out docs/results/table3_v2/gemma3-270m" in report
    assert "--trainee gemma3-270m --arms general,cs,is,human,cs_nc,cs_perm --arms-json docs/results/table3_v2/data/arms.json" in report
    for tier in ("2", "all"):
        proc = subprocess.run(["bash", str(BENCH / "table3_v2.sh"), "arms", tier], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, **env})
        assert proc.returncode == 2 and "tier 1 only" in proc.stderr, proc.stderr
    bad = subprocess.run(["bash", str(BENCH / "table3_v2.sh"), "arms", "1"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **env, "TRAINEE": "qwen"})
    assert bad.returncode == 2 and "TRAINEE must be" in bad.stderr


def test_the_report_of_a_trainee_names_it_and_counts_only_its_arms(tmp_path: Path) -> None:
    """--trainee titles the page; --arms is the design on that trainee, so tier 1 x 3 seeds is complete;
    --arms-json reads the budgets from another folder and lists only the arms this trainee trained."""
    _fixture(tmp_path / "data")
    info = {"budget": 500_000, "ablation_budget": 221_000, "max_steps": 108,
            "arms": {a: {"long_rows": 1, "long_tokens": 2, "filler_rows": 3, "filler_tokens": 4, "slot_tokens": 5, "packs": 6}
                     for a in ("general", "cs", "is", "human", "cs_nc", "cs_perm", "cs_d1")}}
    (tmp_path / "arms.json").write_text(json.dumps(info))
    _run([sys.executable, str(BENCH / "table3_v2_report.py"), "--data", str(tmp_path / "data"), "--out",
          str(tmp_path / "out"), "--resamples", "100", "--trainee", "gemma3-270m",
          "--arms", "general,cs,is,human,cs_nc,cs_perm", "--arms-json", str(tmp_path / "arms.json")], tmp_path)
    page = (tmp_path / "out" / "README.md").read_text()
    assert page.startswith("# Table 3 v2: Gemma-3-270M (base, 32k window), equal budgets")
    assert "**Status: complete.** All 18 runs of the design (6 arms x 3 seeds) are in." in page
    assert "max_steps 108 for every arm" in page and "| cs_perm | 1 |" in page and "| cs_d1 |" not in page
