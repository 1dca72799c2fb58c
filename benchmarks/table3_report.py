"""Table 3 of the paper in miniature: tables, a plot and the set-up, every number with n and a 95% interval.

    python benchmarks/table3_report.py --src DIR [DIR ...] --out docs/results/table3_smollm2 [--note STATUS.md]

DIR holds what `benchmarks/table3.sh gen/arms1/arms2` saved ($OUT/table3: arm-<arm>.tgz, pipe-*.tgz,
data.tgz, writer.tgz, lane logs), or is a work tree with runs/ already unpacked. Writes OUT/README.md
(a table laid out like the paper's Table 3, differences against general only, the coherence
diagnostic, the documents ablation, the generators, the data each arm trained on), OUT/results.json
and OUT/table3.png. Scores are per item (token F1 for HotpotQA and SQuAD, share of values found for
NIAH), x100; an arm's cell is the item mean with a percentile bootstrap interval; differences use the
paired bootstrap over the same items (ctxsynth.eval.stats, 10,000 resamples).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from ctxsynth.eval.stats import Estimate, bootstrap, paired_difference

ARMS = {  # arm -> (row label, paper row it stands for)
    "general": ("general data only", "ShareGPT / UltraChat only"),
    "niah": ("+ NIAH (SFT3-like)", "(pilot SFT3)"),
    "instruction": ("+ instruction synthesis", "+ instruction synthesis"),
    "instruction_nc": ("  without contexts", "context-free twin"),
    "cs_smollm2": ("+ context synthesis, SmolLM2 as is", "+ context synthesis"),
    "cs_smollm2_nc": ("  without contexts", "context-free twin"),
    "cs_writer": ("+ context synthesis, tuned writer", "generator ablation"),
    "cs_writer_nc": ("  without contexts", "context-free twin"),
    "human": ("+ human contexts", "human-annotated contexts"),
    "human_nc": ("  without contexts", "context-free twin"),
    "cs_smollm2_d1": ("+ context synthesis A, 1 document", "n = 1 ablation"),
    "cs_smollm2_d5": ("+ context synthesis A, 5 documents", "n = 5 ablation"),
}
COLUMNS = ("hotpotqa", "squad_2k", "squad_4k", "squad_8k", "niah_unseen")
HEAD = {"hotpotqa": "HotpotQA (multi-doc, 10 real paragraphs)", "squad_2k": "SQuAD 2k", "squad_4k": "SQuAD 4k",
        "squad_8k": "SQuAD 8k", "niah_unseen": "NIAH unseen (multi-value)", "all": "mean of all items"}
TWINS = (("instruction", "instruction_nc"), ("cs_smollm2", "cs_smollm2_nc"), ("cs_writer", "cs_writer_nc"),
         ("human", "human_nc"))
PIPES = {"table3-cs-smollm2": "context synthesis, A: SmolLM2 as is", "table3-cs-writer": "context synthesis, B: tuned writer",
         "table3-instruction": "instruction synthesis (SmolLM2)", "table3-human": "human contexts"}
Scores = dict[str, float]


def unpack(sources: list[Path]) -> Path:
    """A folder with runs/ in it: the one source that is such a tree, or a temporary one with every
    .tgz under the sources extracted (later files win: a rerun's archive replaces the first one)."""
    if len(sources) == 1 and (sources[0] / "runs").is_dir() and not list(sources[0].rglob("*.tgz")):
        return sources[0]
    root = Path(tempfile.mkdtemp(prefix="table3-"))
    archives = [a for src in sources for a in src.rglob("*.tgz")]
    for archive in sorted(archives, key=lambda p: p.stat().st_mtime):
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    return root


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def column(row: dict[str, Any]) -> str | None:
    task, meta = row["task"], row.get("meta") or {}
    if task == "builtin_hotpotqa":
        return "hotpotqa"
    if task == "builtin_squad":
        return f"squad_{int(meta.get('target_length') or meta.get('length') or 0) // 1024}k"
    if task.startswith("niah_"):
        return "niah_unseen"
    return None


def arm_scores(root: Path, arm: str) -> dict[str, Scores] | None:
    folder = root / "runs" / "eval" / f"table3-{arm}"
    path = next((p for p in (folder / "predictions.jsonl", folder / "predictions.jsonl.gz") if p.exists()), None)
    if path is None:
        return None
    cells: dict[str, Scores] = {c: {} for c in (*COLUMNS, "all")}
    for row in _read_jsonl(path):
        col = column(row)
        if col is not None:
            cells[col][row["id"]] = float(row["score"])
            cells["all"][row["id"]] = float(row["score"])
    return cells


def _fmt(e: Estimate | None, bold: bool = False) -> str:
    if e is None:
        return "-"
    text = e.format()
    return f"**{text}**" if bold and e.excludes_zero() else text


def _est(e: Estimate) -> dict[str, float]:
    return {"mean": round(e.mean * 100, 2), "low": round(e.low * 100, 2), "high": round(e.high * 100, 2), "n": e.n}


def score_table(scores: dict[str, dict[str, Scores]], records: list[dict[str, Any]]) -> list[str]:
    cols = (*COLUMNS, "all")
    lines = ["| arm | " + " | ".join(HEAD[c] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for arm, cells in scores.items():
        ests = {c: bootstrap(list(cells[c].values())) if cells[c] else None for c in cols}
        lines.append(f"| {ARMS[arm][0]} | " + " | ".join(_fmt(ests[c]) for c in cols) + " |")
        records.append({"table": "scores", "arm": arm, "cells": {c: _est(e) for c, e in ests.items() if e}})
    return lines


def diff_table(scores: dict[str, dict[str, Scores]], pairs: list[tuple[str, str]], records: list[dict[str, Any]],
               title: str) -> list[str]:
    cols = (*COLUMNS, "all")
    lines = ["| A - B | " + " | ".join(HEAD[c] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for a, b in pairs:
        if a not in scores or b not in scores:
            continue
        ests = {c: paired_difference(scores[b][c], scores[a][c]) if scores[a][c] and scores[b][c] else None for c in cols}
        lines.append(f"| {a} - {b} | " + " | ".join(_fmt(ests[c], bold=True) for c in cols) + " |")
        records.append({"table": title, "a": a, "b": b, "cells": {c: _est(e) for c, e in ests.items() if e}})
    return lines + ["", "Bold: the 95% paired-bootstrap interval excludes 0."]


def data_table(root: Path) -> list[str]:
    lines = ["| arm | long rows | long tokens (budget) | train steps | final loss | train seconds |", "|---|---|---|---|---|---|"]
    for arm in ARMS:
        meta_path = root / "runs" / "table3" / "data" / f"{arm}.jsonl.meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        summ_path = root / "runs" / "table3" / "train" / arm / "summary.json"
        summ = json.loads(summ_path.read_text()) if summ_path.exists() else {}
        if not meta and not summ:
            continue
        tokens = f"{meta['tokens']:,} ({meta['budget']:,})" if "tokens" in meta else ("0" if arm == "general" else "-")
        loss = summ.get("train_loss")
        lines.append(f"| {arm} | {meta.get('rows', 0 if arm == 'general' else '-')} | {tokens} | {summ.get('global_step', '-')} "
                     f"| {f'{loss:.3f}' if isinstance(loss, (int, float)) else '-'} | {summ.get('seconds', '-')} |")
    return lines


def passed_by_seed(root: Path, name: str) -> Scores:
    """1.0 for every seed whose record was kept by the synthesize stage, 0.0 for every rejected one."""
    synth = root / "runs" / "table3" / "pipe" / name / "synth"
    out: Scores = {r["id"]: 1.0 for p in sorted(synth.glob("shard-*.jsonl.gz")) for r in _read_jsonl(p)}
    out.update({r["id"]: 0.0 for p in sorted((synth / "rejected").glob("*.jsonl.gz")) for r in _read_jsonl(p)})
    return out


def pipe_table(root: Path) -> list[str]:
    lines = ["| data | seeds | kept, % [95% CI] | rejected (reasons) | kept context words, median [IQR] |",
             "|---|---|---|---|---|"]
    rates: dict[str, Scores] = {}
    for name, label in PIPES.items():
        synth = root / "runs" / "table3" / "pipe" / name / "synth"
        if not synth.is_dir():
            continue
        kept = [r for p in sorted(synth.glob("shard-*.jsonl.gz")) for r in _read_jsonl(p)]
        rejected = [r for p in sorted((synth / "rejected").glob("*.jsonl.gz")) for r in _read_jsonl(p)]
        reasons: dict[str, int] = {}
        for r in rejected:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        words = sorted(len(r["context"].split()) for r in kept)
        q = statistics.quantiles(words, n=4) if len(words) >= 2 else [0, words[0] if words else 0, 0]
        why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none"
        rates[name] = passed_by_seed(root, name)
        rate = bootstrap(list(rates[name].values()))
        lines.append(f"| {label} | {len(kept) + len(rejected)} | {len(kept)}, {rate.format()} | {len(rejected)} ({why}) "
                     f"| {q[1]:.0f} [{q[0]:.0f}, {q[2]:.0f}] |")
    a, b = rates.get("table3-cs-smollm2"), rates.get("table3-cs-writer")
    if a and b and set(a) == set(b):
        d = paired_difference(a, b)
        lines += ["", f"Kept share, tuned writer minus SmolLM2 as is, paired over the same {d.n} seeds: "
                      f"{d.format()} points (95% paired bootstrap)."]
    return lines


def plot(scores: dict[str, dict[str, Scores]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = (*COLUMNS, "all")
    fig, axes = plt.subplots(1, len(cols), figsize=(3.1 * len(cols), 4.6), sharey=False)
    names = list(scores)
    for ax, c in zip(axes, cols):
        ests = [bootstrap(list(scores[a][c].values())) if scores[a][c] else None for a in names]
        ys = [e.mean * 100 if e else 0 for e in ests]
        err = [[(e.mean - e.low) * 100 if e else 0 for e in ests], [(e.high - e.mean) * 100 if e else 0 for e in ests]]
        colors = ["0.6" if a.endswith("_nc") else "C0" for a in names]
        ax.barh(range(len(names)), ys, xerr=err, color=colors, capsize=2)
        ax.set_yticks(range(len(names)), names if c == cols[0] else [""] * len(names), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(HEAD[c], fontsize=8)
        ax.set_xlabel("score x100, 95% CI", fontsize=7)
    fig.suptitle("Table 3 in miniature: SmolLM2-135M-Instruct (grey: trained without contexts)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _device(root: Path) -> str:
    for path in sorted((root / "runs" / "table3" / "train").glob("*/summary.json")):
        device = json.loads(path.read_text()).get("device")
        if device:
            return str(device)
    return "unknown"


def setup(root: Path, n: dict[str, int]) -> list[str]:
    """The page's head: what ran, on what, with which commands (numbers come from the files)."""
    return [
        "# Table 3 of the paper in miniature: SmolLM2-135M-Instruct, with intervals",
        "",
        "Every arm fine-tunes SmolLM2-135M-Instruct with the same recipe and the same 1,000 general rows",
        "(short SQuAD v2 rows, `benchmarks/pilot.py general`), plus at most the same number of long-data",
        "tokens (the budget; `benchmarks/table3.py cap`). Arms and configs: `configs/experiments/table3/`.",
        "",
        f"- Training device: {_device(root)}; each arm trained on one GPU (up to two arms shared a GPU at a time). Evaluation: greedy, bf16, window 8,192, middle truncation.",
        "- Seeds: 300 pairs (150 SQuAD v2, 150 HotpotQA, seed partitions, none a general row). Context writer:",
        "  SmolLM2 fine-tuned on human triples disjoint from them (`ctxsynth writer-data`, `writer_train.yaml`).",
        "- Tests (held out from every seed, general row and writer triple): HotpotQA dev-distractor with its",
        "  10 real paragraphs; SQuAD v2 dev padded with essays to 2k/4k/8k (depths 0.25/0.75); an NIAH test no arm",
        "  trained on (multi-value, UUID keys, 2 distractor needles, Wikipedia haystack, 4k). Token F1 (QA) and",
        "  share of values found (NIAH), x100. n per column: " + ", ".join(f"{c} {v}" for c, v in n.items()) + ".",
        "- Intervals: 95% percentile bootstrap over items; differences: paired bootstrap over the same items",
        "  (10,000 resamples, `ctxsynth.eval.stats`). They cover test-item sampling only: one training seed per arm.",
        "- Commands: `bash benchmarks/table3.sh inputs` (CPU), then on the GPU machine `bash benchmarks/table3.sh gen` (ends with `prep`),",
        "  `... arms1`, `... arms2` (two lanes each), then",
        "  `python benchmarks/table3_report.py --src <returned files> --out docs/results/table3_smollm2`.",
        "",
        "![scores per arm](table3.png)",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, nargs="+", required=True, help="folders of returned .tgz files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--note", type=Path, help="a markdown file put under the title (what ran, what did not)")
    args = parser.parse_args(argv)
    root = unpack(args.src)
    scores = {arm: s for arm in ARMS if (s := arm_scores(root, arm)) is not None}
    if "general" not in scores:
        raise SystemExit(f"{' '.join(map(str, args.src))}: no predictions of the general-only arm (runs/eval/table3-general)")
    records: list[dict[str, Any]] = []
    n = {c: len(scores["general"][c]) for c in (*COLUMNS, "all")}
    lines = ["## Scores (x100, mean [95% bootstrap CI])", "", "n per column: " + ", ".join(f"{c} {v}" for c, v in n.items()), ""]
    lines += score_table(scores, records)
    lines += ["", "## Each arm minus general only (paired bootstrap)", ""]
    lines += diff_table(scores, [(a, "general") for a in scores if a != "general"], records, "vs_general")
    lines += ["", "## Coherence diagnostic: with minus without contexts, the same pairs (paired bootstrap)", ""]
    lines += diff_table(scores, list(TWINS), records, "coherence")
    lines += ["", "## Context synthesis vs the other sources, generators and documents per sample", ""]
    lines += diff_table(scores, [("cs_smollm2", "instruction"), ("cs_writer", "instruction"), ("human", "cs_smollm2"),
                                 ("human", "cs_writer"), ("cs_writer", "cs_smollm2"), ("cs_smollm2", "cs_smollm2_d1"),
                                 ("cs_smollm2", "cs_smollm2_d5"), ("cs_smollm2_d5", "cs_smollm2_d1"),
                                 ("cs_smollm2", "niah")], records, "comparisons")
    lines += ["", "## Training data per arm", ""] + data_table(root)
    lines += ["", "## Generated data", ""] + pipe_table(root)
    args.out.mkdir(parents=True, exist_ok=True)
    head = setup(root, n)
    if args.note:
        head[1:1] = ["", args.note.read_text(encoding="utf-8").strip()]
    (args.out / "README.md").write_text("\n".join([*head, "", *lines]) + "\n", encoding="utf-8")
    (args.out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    plot(scores, args.out / "table3.png")
    print("\n".join(lines))
    print(f"table3_report: {len(scores)} arms, {len(records)} rows -> {args.out}/results.md, results.json, table3.png")


if __name__ == "__main__":
    main()
