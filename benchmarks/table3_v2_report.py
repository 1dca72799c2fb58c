"""Table 3 v2: every table and the plot from the committed predictions alone (DESIGN.md's statistics).

    python benchmarks/table3_v2_report.py --data docs/results/table3_v2/data --out docs/results/table3_v2
        [--resamples 10000] [--src DIR ...]

--data holds predictions/<arm>-s<seed>.jsonl.gz (one row per test item: id, task, score, meta with
family, column and question_id) and, when present, arms.json (the arms' budgets) and generation.json
(kept and rejected counts). --src first copies them out of what `benchmarks/table3_v2.sh` saved
(the runs/table3_v2/saved/*.tgz inside table3_v2_results.tgz) into --data, slimmed and gzipped, so the committed
files are exactly what the tables are computed from.

Statistics (fixed in DESIGN.md before the runs): the primary endpoint is the QA score, the mean of
the HotpotQA and SQuAD family means, x100, averaged over an arm's seeds. Intervals come from a
hierarchical bootstrap: each resample draws the test questions with replacement within each family
(items clustered by meta.question_id; one draw shared by both arms of a difference) and each arm's
seeds with replacement, independently per arm. The four primary comparisons get one-sided p-values
and a Holm correction; everything else is exploratory (intervals only). Writes OUT/README.md (status
and tables), OUT/results.json and OUT/table3_v2.png; the last line printed is
`report: arms N runs N primary_rejected K/4`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FAMILIES = ("hotpotqa", "squad", "niah")
QA = ("hotpotqa", "squad")
COLUMNS = ("hotpotqa_real", "hotpotqa_8k", "hotpotqa_16k", "hotpotqa_32k", "squad_2k", "squad_4k", "squad_8k",
           "squad_16k", "squad_32k", "niah_4k", "niah_8k", "niah_16k", "niah_32k")  # 16k/32k: a 32k-window trainee
TRAINEES = {"smollm2": "SmolLM2-135M-Instruct", "gemma3-270m": "Gemma-3-270M (base, 32k window)"}
LABELS = {
    "general": "general data only", "cs": "+ context synthesis", "is": "+ instruction synthesis",
    "human": "+ human contexts", "cs_nc": "+ context synthesis, without contexts", "cs_perm": "+ context synthesis, permuted contexts",
    "is_nc": "+ instruction synthesis, without contexts", "human_nc": "+ human contexts, without contexts",
    "niah": "+ NIAH (SFT3-like)", "cs_d1": "cs, 1 document (B_abl)", "cs_d5": "cs, 5 documents (B_abl)",
    "cs_d10": "cs, 10 documents (B_abl)", "cs_any": "cs, any-task distractors", "cs_hard": "cs, hard negatives (BM25)",
    "cs_pos0": "cs, gold at depth 0", "cs_pos05": "cs, gold at depth 0.5", "cs_pos1": "cs, gold at depth 1",
}
MARGIN = 2.0  # the non-inferiority margin in QA points (DESIGN.md)
PRIMARY = (  # (name, a, b, null bound): H1 is a - b > bound
    ("CS beats IS", "cs", "is", 0.0),
    (f"CS non-inferior to human (margin {MARGIN:g})", "cs", "human", -MARGIN),
    ("contexts matter (CS vs its context-free twin)", "cs", "cs_nc", 0.0),
    ("coherence matters (CS vs permuted contexts)", "cs", "cs_perm", 0.0),
)
EXPLORATORY = [("is", "is_nc"), ("human", "human_nc"), ("human", "is"), ("cs_d5", "cs_d1"), ("cs_d10", "cs_d1"),
               ("cs_d10", "cs_d5"), ("cs", "cs_any"), ("cs", "cs_hard"), ("cs", "cs_pos0"), ("cs", "cs_pos05"),
               ("cs", "cs_pos1"), ("niah", "general")]
ALPHA = 0.05
SEEDS = ("1", "2", "3")  # every arm's training seeds (DESIGN.md)


def read_json(path: Path) -> Any:
    """The JSON file at `path`, or None where there is none (arms.json, generation.json, runs.json are optional)."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def slim(row: dict[str, Any]) -> dict[str, Any]:
    meta = row.get("meta") or {}
    keep = ("family", "column", "question_id", "length", "target_length", "depth", "gold_depth", "title")
    return {"id": row["id"], "task": row["task"], "score": row["score"], "prediction": row.get("prediction"),
            "references": row.get("references"), "error": row.get("error"),
            "meta": {k: meta[k] for k in keep if k in meta}}


def slim_file(path: Path) -> Path:
    """PATH (an eval predictions.jsonl, prompts included) -> PATH.gz beside it, slimmed (no prompts)."""
    out = path.with_name(path.name + ".gz")
    text = "".join(json.dumps(slim(r), sort_keys=True) + "\n" for r in read_jsonl(path))
    out.write_bytes(gzip.compress(text.encode(), mtime=0))
    return out


def collect(sources: list[Path], data: Path) -> None:
    """Copy the runs' predictions (slimmed), arms.json and generation counts into `data`."""
    root = Path(tempfile.mkdtemp(prefix="table3v2-"))
    for archive in sorted((a for s in sources for a in s.rglob("*.tgz")), key=lambda p: p.stat().st_mtime):
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    (data / "predictions").mkdir(parents=True, exist_ok=True)
    for pred in sorted(root.rglob("eval/table3-v2-*/predictions.jsonl*")):
        name = pred.parent.name.removeprefix("table3-v2-")
        text = "".join(json.dumps(slim(r), sort_keys=True) + "\n" for r in read_jsonl(pred))
        (data / "predictions" / f"{name}.jsonl.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    for arms in root.rglob("arms/arms.json"):
        (data / "arms.json").write_text(arms.read_text(encoding="utf-8"), encoding="utf-8")
    generation: dict[str, list[Any]] = {}
    for stats in sorted(root.rglob("pipe/table3-v2-*/_state/synthesize/shard-*.done")):
        generation.setdefault(stats.parent.parent.parent.name, []).append(json.loads(stats.read_text(encoding="utf-8")))
    if generation:
        (data / "generation.json").write_text(json.dumps(generation, indent=1) + "\n", encoding="utf-8")
    runs_path = data / "runs.json"
    runs = read_json(runs_path) or {}
    runs.update(provenance(root))
    if runs:
        runs_path.write_text(json.dumps(dict(sorted(runs.items())), indent=1) + "\n", encoding="utf-8")


def provenance(root: Path) -> dict[str, dict[str, Any]]:
    """Per run (arm-sSEED): the training summary (steps, loss, seconds, GPU), the library versions TRL wrote
    into the model card, and the evaluation's settings and wall time, so the page says what ran where."""
    out: dict[str, dict[str, Any]] = {}
    for summary in sorted(root.rglob("train/*-s*/summary.json")):
        t = json.loads(summary.read_text(encoding="utf-8"))
        card = summary.with_name("README.md")
        versions = dict(re.findall(r"^- (\w+): (\S+)$", card.read_text(encoding="utf-8"), re.M)) if card.exists() else {}
        out.setdefault(summary.parent.name, {})["train"] = {
            **{k: t.get(k) for k in ("global_step", "train_loss", "seconds", "device", "rows", "tokens")},
            "versions": versions}
    for scores in sorted(root.rglob("eval/table3-v2-*/scores.json")):
        run = json.loads(scores.read_text(encoding="utf-8")).get("run", {})
        backend = run.get("backend", {})
        out.setdefault(scores.parent.name.removeprefix("table3-v2-"), {})["eval"] = {
            **{k: run.get(k) for k in ("wall_seconds", "n_truncated", "n_errors", "max_model_len", "decoding")},
            **{k: backend.get(k) for k in ("backend", "dtype", "decode_kernel")}}
    return out


@dataclass
class Runs:
    """Scores as one matrix per arm (seeds x items) over one shared item order."""

    items: list[str]
    family: np.ndarray  # item -> family index
    column: list[str]
    cluster: np.ndarray  # item -> cluster (question) index
    scores: dict[str, np.ndarray]  # arm -> seeds x items
    seeds: dict[str, list[str]]


def load_runs(folder: Path) -> Runs:
    by_arm: dict[str, dict[str, dict[str, float]]] = {}
    info: dict[str, dict[str, Any]] = {}
    for path in sorted((folder / "predictions").glob("*.jsonl.gz")):
        arm, _, seed = path.name.removesuffix(".jsonl.gz").rpartition("-s")
        rows = read_jsonl(path)
        by_arm.setdefault(arm, {})[seed] = {r["id"]: float(r["score"]) for r in rows}
        for r in rows:
            info.setdefault(r["id"], r["meta"])
    if not by_arm:
        raise SystemExit(f"no predictions under {folder / 'predictions'}")
    items = sorted(info)
    for arm, seeds in by_arm.items():
        for seed, scores in seeds.items():
            if set(scores) != set(items):
                raise SystemExit(f"{arm} seed {seed} scored {len(scores)} items, the others {len(items)}: not paired")
    clusters = {q: i for i, q in enumerate(sorted({f"{info[i]['family']}:{info[i]['question_id']}" for i in items}))}
    return Runs(
        items=items, family=np.array([FAMILIES.index(info[i]["family"]) for i in items]),
        column=[info[i]["column"] for i in items],
        cluster=np.array([clusters[f"{info[i]['family']}:{info[i]['question_id']}"] for i in items]),
        scores={arm: np.array([[seeds[s][i] for i in items] for s in sorted(seeds)]) for arm, seeds in by_arm.items()},
        seeds={arm: sorted(seeds) for arm, seeds in by_arm.items()})


class Bootstrap:
    """Shared item-cluster draws (within family) for every arm; seed draws independent per arm."""

    def __init__(self, runs: Runs, resamples: int, seed: int = 0) -> None:
        self.runs = runs
        rng = np.random.default_rng(seed)
        n_clusters = int(runs.cluster.max()) + 1
        counts = np.zeros((resamples, n_clusters), dtype=np.float32)
        cluster_family = np.zeros(n_clusters, dtype=int)
        cluster_family[runs.cluster] = runs.family
        for f in range(len(FAMILIES)):
            members = np.flatnonzero(cluster_family == f)
            if members.size:
                draws = rng.integers(0, members.size, size=(resamples, members.size))
                for r in range(resamples):
                    counts[r, members] += np.bincount(draws[r], minlength=members.size)
        self.item_weights = counts[:, runs.cluster]  # resamples x items
        self.rng = rng
        self.resamples = resamples

    def endpoint(self, matrix: np.ndarray, what: str, draw_seeds: bool = True) -> np.ndarray:
        """The statistic per resample: a family mean, a column mean, "qa" or "all" (family means averaged)."""
        n_seeds = matrix.shape[0]
        seed_w = (np.stack([np.bincount(row, minlength=n_seeds) for row in
                            self.rng.integers(0, n_seeds, size=(self.resamples, n_seeds))])
                  if draw_seeds else np.ones((self.resamples, n_seeds)))
        per_item = (seed_w @ matrix) / seed_w.sum(axis=1, keepdims=True)  # resamples x items
        return endpoint_mean(self.runs, per_item, what, self.item_weights)

    def point(self, matrix: np.ndarray, what: str) -> float:
        return point(self.runs, matrix, what)


def endpoint_mean(runs: Runs, per_item: np.ndarray, what: str, w: np.ndarray) -> np.ndarray:
    """A family mean, a column mean, "qa" or "all" (family means averaged) of per-item scores, weighted
    by `w` (resamples x items; a single row for the point estimate)."""
    if what in ("qa", "all"):
        fams = QA if what == "qa" else FAMILIES
        parts = [endpoint_mean(runs, per_item, f, w) for f in fams if (runs.family == FAMILIES.index(f)).any()]
        return np.mean(parts, axis=0)
    mask = (runs.family == FAMILIES.index(what)) if what in FAMILIES else np.array([c == what for c in runs.column])
    if per_item.ndim == 1:
        return np.array(per_item[mask].mean())
    total = w[:, mask].sum(axis=1)  # a column (part of a family) can draw no item in a tiny set: nan there
    return np.divide((per_item[:, mask] * w[:, mask]).sum(axis=1), total, out=np.full(total.shape, np.nan),
                     where=total > 0)


def point(runs: Runs, matrix: np.ndarray, what: str) -> float:
    """The point estimate of `what` for an arm's seeds x items matrix: the seed mean, then `endpoint_mean`."""
    return float(endpoint_mean(runs, matrix.mean(axis=0), what, np.ones((1, matrix.shape[1]))))


def summary(values: np.ndarray, point: float) -> dict[str, float]:
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return {"mean": 100 * point, "low": 100 * float(low), "high": 100 * float(high)}


def fmt(e: dict[str, float]) -> str:
    return f"{e['mean']:.1f} [{e['low']:.1f}, {e['high']:.1f}]"


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone), in the input order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def analyse(runs: Runs, resamples: int) -> dict[str, Any]:
    boot = Bootstrap(runs, resamples)
    whats = ["qa", *[f for f in FAMILIES if (runs.family == FAMILIES.index(f)).any()],
             *[c for c in COLUMNS if c in runs.column]]
    draws = {arm: {w: boot.endpoint(m, w) for w in whats} for arm, m in runs.scores.items()}
    points = {arm: {w: boot.point(m, w) for w in whats} for arm, m in runs.scores.items()}
    cells = {arm: {w: summary(draws[arm][w], points[arm][w]) for w in whats} for arm in runs.scores}
    per_seed = {arm: {s: 100 * boot.point(m[k:k + 1], "qa") for k, s in enumerate(runs.seeds[arm])}
                for arm, m in runs.scores.items()}

    def diff(a: str, b: str, w: str = "qa") -> tuple[dict[str, float], np.ndarray]:
        d = draws[a][w] - draws[b][w]
        return summary(d, points[a][w] - points[b][w]), d

    primary: list[dict[str, Any]] = []
    for name, a, b, bound in PRIMARY:
        if a in runs.scores and b in runs.scores:
            est, d = diff(a, b)
            p = float((1 + np.sum(d <= bound / 100)) / (resamples + 1))
            primary.append({"name": name, "a": a, "b": b, "bound": bound, "estimate": est, "p": p})
    for row, adj in zip(primary, holm([float(r["p"]) for r in primary]), strict=True):
        row["p_holm"] = adj
        row["rejected"] = adj < ALPHA
    exploratory = []
    pairs = [(arm, "general") for arm in runs.scores if arm != "general"] + EXPLORATORY
    for a, b in dict.fromkeys(pairs):
        if a in runs.scores and b in runs.scores:
            exploratory.append({"a": a, "b": b, **{w: diff(a, b, w)[0] for w in whats}})
    return {"columns": whats, "cells": cells, "per_seed_qa": per_seed, "primary": primary, "exploratory": exploratory,
            "n_items": {w: int(np.sum(runs.family == FAMILIES.index(w))) if w in FAMILIES else
                        int(sum(c == w for c in runs.column)) for w in whats if w != "qa"},
            "n_clusters": int(runs.cluster.max()) + 1, "resamples": resamples}


ARM_ORDER = list(LABELS)


def status(runs: Runs, design_arms: list[str]) -> str:
    """What of the design (every arm x SEEDS) the tables rest on, computed from the files: the page says
    itself whether it is final, which runs are missing and that a verdict on partial seeds is provisional."""
    expected = [(arm, s) for arm in design_arms for s in SEEDS]
    have = {(arm, s) for arm, seeds in runs.seeds.items() for s in seeds}
    missing = [x for x in expected if x not in have]
    if not missing:
        return f"**Status: complete.** All {len(expected)} runs of the design ({len(design_arms)} arms x {len(SEEDS)} seeds) are in."
    primary_arms = list(dict.fromkeys(a for _, x, y, _ in PRIMARY for a in (x, y)))
    short = [f"{a} s{s}" for a, s in missing if a in primary_arms]
    absent = [a for a in design_arms if a not in runs.seeds]
    partial = sorted({a for a, _ in missing if a in runs.seeds and a not in primary_arms})
    parts = []
    if short:
        parts.append("of the primary arms, " + ", ".join(short))
    if partial:
        parts.append("some seeds of " + ", ".join(partial))
    if absent:
        parts.append(f"{len(absent)} arm(s) not run at all (" + ", ".join(absent) + ")")
    text = (f"**Status: incomplete: {len(expected) - len(missing)} of the design's {len(expected)} runs are in** "
            f"({len(design_arms)} arms x {len(SEEDS)} seeds). Missing: " + "; ".join(parts) + ".")
    if short:
        text += (" The primary verdicts below are provisional: the design tests each primary arm over all "
                 f"{len(SEEDS)} seeds.")
    return text


def markdown(result: dict[str, Any], arms_info: dict[str, Any] | None, status: str,
             generation: dict[str, list[dict[str, Any]]] | None = None,
             runs_info: dict[str, dict[str, Any]] | None = None, trainee: str = "smollm2") -> str:
    whats = result["columns"]
    arms = sorted(result["cells"], key=lambda a: ARM_ORDER.index(a) if a in ARM_ORDER else 99)
    out = [f"# Table 3 v2: {TRAINEES.get(trainee, trainee)}, equal budgets, 3 seeds, no leaks", "", status, "",
           "Design (written before the runs): [DESIGN.md](DESIGN.md). Every number: x100, mean over the arm's seeds,",
           f"95% hierarchical bootstrap interval ({result['resamples']:,} resamples; items clustered by question,",
           "seeds resampled per arm). `qa` is the primary endpoint (mean of the HotpotQA and SQuAD family means).",
           "", "![QA score per arm](table3_v2.png)", "",
           "## Primary comparisons (one-sided, Holm-corrected, family-wise alpha 0.05)", "",
           "| comparison | A - B, QA points | H1 | p | p (Holm) | verdict |", "|---|---|---|---|---|---|"]
    for r in result["primary"]:
        verdict = "holds" if r["rejected"] else "not shown"
        out.append(f"| {r['name']}: {r['a']} - {r['b']} | {fmt(r['estimate'])} | > {r['bound']:g} | {r['p']:.4f} | "
                   f"{r['p_holm']:.4f} | {verdict} |")
    out += ["", "## Scores per arm", "", "n items: " + ", ".join(f"{w} {n}" for w, n in result["n_items"].items()), "",
            "| arm | seeds | " + " | ".join(whats) + " |", "|---|---|" + "---|" * len(whats)]
    for arm in arms:
        seeds = ", ".join(f"{v:.1f}" for v in result["per_seed_qa"][arm].values())
        out.append(f"| {LABELS.get(arm, arm)} | {seeds} | " + " | ".join(fmt(result["cells"][arm][w]) for w in whats) + " |")
    out += ["", "The seeds column gives each training seed's own QA score.", "",
            "## Exploratory differences (intervals only, no tests)", "",
            "| A - B | " + " | ".join(whats) + " |", "|---|" + "---|" * len(whats)]
    for r in result["exploratory"]:
        out.append(f"| {r['a']} - {r['b']} | " + " | ".join(fmt(r[w]) for w in whats) + " |")
    if arms_info:
        out += ["", f"## Training data per arm (budget B = {arms_info['budget']:,} tokens, B_abl = "
                f"{arms_info['ablation_budget']:,}, max_steps {arms_info['max_steps']} for every arm)", "",
                "| arm | long rows | long tokens | filler rows | filler tokens | slot tokens | packs |", "|---|---|---|---|---|---|---|"]
        for arm, i in arms_info["arms"].items():
            if arm not in result["cells"]:  # an arm this trainee does not train (tier 1 only on the 32k model)
                continue
            out.append(f"| {arm} | {i['long_rows']} | {i['long_tokens']:,} | {i['filler_rows']} | {i['filler_tokens']:,} | "
                       f"{i['slot_tokens']:,} | {i['packs']} |")
    if generation:
        out += ["", "## Generated data (kept share: exploratory)", "",
                "| run | seeds | kept | kept % | rejected (reasons) |", "|---|---|---|---|---|"]
        for run, shards in sorted(generation.items()):
            n_in = sum(int(x.get("n_in", 0)) for x in shards)
            n_out = sum(int(x.get("n_out", 0)) for x in shards)
            reasons: dict[str, int] = {}
            for x in shards:
                for k, v in x.items():
                    if k.startswith("dropped_"):
                        reasons[k.removeprefix("dropped_")] = reasons.get(k.removeprefix("dropped_"), 0) + int(v)
            why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none"
            out.append(f"| {run} | {n_in} | {n_out} | {100 * n_out / max(n_in, 1):.1f} | {n_in - n_out} ({why}) |")
    if runs_info:
        out += provenance_table(runs_info)
    out += ["", "## How it ran and how to continue", "",
            "Commands (benchmarks/table3_v2.sh; the GPU calls and the carried inputs are in docs/gpu.md):",
            "`bash benchmarks/table3_v2.sh split` (CPU, builds data/ and the test items), then on the GPU",
            "`writers gen prep pack`, then `DEADLINE=340 bash benchmarks/table3_v2.sh arms all pack` until every run is",
            "in, each call ending with `pack`. prep's training files (every arm's slot, sha256 in arms.json) and",
            "the generators' kept and rejected records are committed as data/table3_v2_data-arms.txz, so a later",
            "session needs only the repository: `bash benchmarks/table3_v2.sh restore docs/results/table3_v2/data`",
            "puts the files back and checks them, and a run whose predictions are committed is not run again.",
            "This page: `python benchmarks/table3_v2_report.py --src DIR --data docs/results/table3_v2/data",
            "--out docs/results/table3_v2` with DIR the returned `table3_v2_results.tgz` unpacked (without `--src`",
            "it is rebuilt from the committed data/ alone)."]
    return "\n".join(out) + "\n"


def provenance_table(runs_info: dict[str, dict[str, Any]]) -> list[str]:
    devices = sorted({r["train"]["device"] for r in runs_info.values() if r.get("train", {}).get("device")})
    versions = sorted({", ".join(f"{k} {v}" for k, v in r["train"]["versions"].items())
                       for r in runs_info.values() if r.get("train", {}).get("versions")})
    out = ["", "## Runs (training and evaluation, as recorded by each run)", "",
           f"GPU: {'; '.join(devices) or 'not recorded'}. Libraries (from the model cards): {'; '.join(versions) or 'not recorded'}.",
           "", "| run | steps | train loss | train s | eval s | eval truncated | eval errors |", "|---|---|---|---|---|---|---|"]
    for name, r in runs_info.items():
        t, e = r.get("train", {}), r.get("eval", {})
        loss = f"{t['train_loss']:.4f}" if isinstance(t.get("train_loss"), float) else "-"
        out.append(f"| {name} | {t.get('global_step', '-')} | {loss} | {t.get('seconds', '-')} | "
                   f"{e.get('wall_seconds', '-')} | {e.get('n_truncated', '-')} | {e.get('n_errors', '-')} |")
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = sorted(result["cells"], key=lambda a: ARM_ORDER.index(a) if a in ARM_ORDER else 99)
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(arms) + 1.5))
    for y, arm in enumerate(arms):
        e = result["cells"][arm]["qa"]
        ax.errorbar(e["mean"], y, xerr=[[e["mean"] - e["low"]], [e["high"] - e["mean"]]], fmt="o", color="C0", capsize=3)
        ax.plot(list(result["per_seed_qa"][arm].values()), [y] * len(result["per_seed_qa"][arm]), "x", color="C1")
    ax.set_yticks(range(len(arms)), [LABELS.get(a, a) for a in arms])
    ax.invert_yaxis()
    ax.set_xlabel("QA score (token F1 x100): mean over seeds, 95% hierarchical bootstrap; x = one seed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def earlier_generation(data: Path, runs: Runs) -> list[str]:
    """The runs of the first generation (data/gen1/): its training files were lost with the checkout that
    held them before they were committed, so they stand beside the tables, not in them, each next to the
    same arm and seed trained on the committed generation."""
    if not (data / "gen1" / "predictions").is_dir():
        return []
    old = load_runs(data / "gen1")

    def qa(r: Runs, arm: str, seed: str) -> float:  # the primary endpoint of one run
        return point(r, r.scores[arm][[r.seeds[arm].index(seed)]], "qa") * 100

    lines = ["", "## The first generation's runs (not in the tables above)", "",
             "The first GPU session generated the contexts and questions once, trained these runs on them and "
             "returned their predictions, but the arms' files, kept only in an ignored folder of that session's checkout, were lost with it before they were "
             "committed. Both generators were run again (same seeds, writers retrained the same way) and the "
             "generation-dependent arms start over on the committed second generation. The general, human, "
             "human_nc and niah slots do not depend on the generators (prep rebuilt general and human with the "
             "same rows and tokens), so those runs stand. QA score x100 per run, same arm and seed:", "",
             "| run | generation 1 | generation 2 |", "|---|---:|---:|"]
    means = []
    for arm in sorted(old.scores):
        for seed in old.seeds[arm]:
            new = f"{qa(runs, arm, seed):.1f}" if seed in runs.seeds.get(arm, []) else "not run yet"
            lines.append(f"| {arm}-s{seed} | {qa(old, arm, seed):.1f} | {new} |")
        both = [s for s in old.seeds[arm] if s in runs.seeds.get(arm, [])]
        if len(both) > 1:  # the same seeds in both generations: the move of the arm's mean
            a, b = (float(np.mean([qa(r, arm, s) for s in both])) for r in (old, runs))
            lines.append(f"| {arm}, mean of seeds {', '.join(both)} | {a:.1f} | {b:.1f} |")
            means.append(f"{arm} {b - a:+.1f}")
    if means:
        lines += ["", "Moves of an arm's mean over the same seeds, generation 2 - generation 1: " + ", ".join(means)
                  + ". A generation is a random draw of its own (GPU sampling is not bit-reproducible); the tables' "
                  "intervals resample training seeds and test items within one generation, not generations."]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("docs/results/table3_v2/data"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/table3_v2"))
    parser.add_argument("--src", type=Path, nargs="*", default=[], help="saved archives to copy into --data first")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--slim", type=Path, nargs="*", default=[],
                        help="only slim these predictions.jsonl files to predictions.jsonl.gz beside them, then stop")
    parser.add_argument("--status", default=None, help="a status line for the page (default: computed from which runs are in)")
    parser.add_argument("--trainee", default="smollm2", help="the model the arms trained (the page's title): " + ", ".join(TRAINEES))
    parser.add_argument("--arms", default=None,
                        help="comma-separated arms of the design on this trainee (default: every arm of arms.json)")
    parser.add_argument("--arms-json", type=Path, default=None,
                        help="the arms' budgets (default: DATA/arms.json; another trainee's page reads SmolLM2's)")
    args = parser.parse_args(argv)
    if args.slim:
        for path in args.slim:
            print(f"slim: {slim_file(path)}")
        return
    if args.src:
        collect(args.src, args.data)
    runs = load_runs(args.data)
    result = analyse(runs, args.resamples)
    arms_info = read_json(args.arms_json or args.data / "arms.json")
    generation = read_json(args.data / "generation.json")
    runs_info = read_json(args.data / "runs.json")
    design_arms = args.arms.split(",") if args.arms else list(arms_info["arms"]) if arms_info else list(runs.scores)
    page_status = args.status or status(runs, design_arms)
    args.out.mkdir(parents=True, exist_ok=True)
    page = markdown(result, arms_info, page_status, generation, runs_info, args.trainee)
    page += "".join(line + "\n" for line in earlier_generation(args.data, runs))
    (args.out / "README.md").write_text(page, encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plot(result, args.out / "table3_v2.png")
    rejected = sum(r["rejected"] for r in result["primary"])
    print(f"report: arms {len(runs.scores)} runs {sum(len(s) for s in runs.seeds.values())} "
          f"primary_rejected {rejected}/{len(result['primary'])}")


if __name__ == "__main__":
    main()
