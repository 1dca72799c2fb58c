"""Tables, a Fig.-2-like plot and verdicts for the NIAH pilot with seeds (issue 26), from committed files.

    python benchmarks/pilot32k_report.py --predictions DIR --design DESIGN.json --out DIR [--resamples 10000]

DIR holds `<arm>-s<seed>-grid.jsonl.gz` and `<arm>-s<seed>-needle.jsonl.gz` (`ctxsynth eval`
predictions, gzipped; `base-grid.jsonl.gz` has no seed). The design file (written before the runs)
names the arms, the lengths, the effective-length threshold and the verdict rules' parameters.

Scores per item: partial = share of expected values in the reply (the eval's score), strict = 1
when every value is there (the paper's exact match). An arm's score in a cell is the mean over its
seeds and items; its 95% interval is a percentile bootstrap that resamples seeds and, within them,
items. A difference A - B resamples the items once for both arms (paired: they share the test
items) and each arm's seeds on their own (independent trainings). Effective length (RULER): the
longest tested length up to which the strict score, averaged over the four variants, stays at or
above the threshold at every tested length. Writes results.md, results.json and accuracy_vs_length.png.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ctxsynth.io import open_text

VARIANTS = ("single", "multi_key", "multi_query", "multi_value")
NAME = re.compile(r"^(?P<arm>[a-z0-9]+?)(?:-s(?P<seed>\d+))?-(?P<kind>grid|needle)\.jsonl(?:\.gz)?$")

# kind -> arm -> seed -> item id -> (variant or task, length, depth, partial)
Runs = dict[str, dict[str, dict[int, dict[str, tuple[str, int, float, float]]]]]


def read_runs(folder: Path) -> Runs:
    runs: Runs = defaultdict(lambda: defaultdict(dict))
    for path in sorted(folder.iterdir()):
        m = NAME.match(path.name)
        if not m:
            continue
        items = {}
        with open_text(path) as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                meta = row.get("meta") or {}
                variant = meta.get("variant") or row["task"].removeprefix("niah_") if row["task"].startswith("niah_") else row["task"]
                items[row["id"]] = (variant, int(meta.get("length") or 0), float(meta.get("depth") or 0.0), float(row["score"]))
        runs[m["kind"]][m["arm"]][int(m["seed"] or 0)] = items
    if not runs.get("grid"):
        raise SystemExit(f"{folder}: no <arm>-s<seed>-grid.jsonl(.gz) files")
    return runs


def matrix(arm: dict[int, dict[str, tuple[str, int, float, float]]], strict: bool, **where: Any) -> tuple[np.ndarray, list[str]]:
    """(seeds x items) scores of the items matching `where` (variant, length, depth; None = any)."""
    def keep(v: tuple[str, int, float, float]) -> bool:
        return all(w is None or (v[k] in w if isinstance(w, tuple) else v[k] == w)
                   for k, w in ((0, where.get("variant")), (1, where.get("length")), (2, where.get("depth"))))

    ids = sorted(set.intersection(*[{i for i, v in items.items() if keep(v)} for items in arm.values()]))
    rows = [[(1.0 if items[i][3] >= 1.0 - 1e-9 else 0.0) if strict else items[i][3] for i in ids] for items in arm.values()]
    return np.asarray(rows, dtype=float).reshape(len(arm), len(ids)), ids


def _resampled_means(m: np.ndarray, item_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    seeds = rng.integers(0, m.shape[0], size=(item_idx.shape[0], m.shape[0]))
    return m[seeds[:, :, None], item_idx[:, None, :]].mean(axis=(1, 2))


def estimate(m: np.ndarray, resamples: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, m.shape[1], size=(resamples, m.shape[1]))
    means = _resampled_means(m, idx, rng)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": round(100 * float(m.mean()), 2), "low": round(100 * float(low), 2),
            "high": round(100 * float(high), 2), "n_items": m.shape[1], "n_seeds": m.shape[0]}


def difference(a: np.ndarray, b: np.ndarray, resamples: int, seed: int = 0) -> dict[str, float]:
    """A - B over the same items (columns in the same order), seeds resampled per arm."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.shape[1], size=(resamples, a.shape[1]))
    diffs = _resampled_means(a, idx, rng) - _resampled_means(b, idx, rng)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"mean": round(100 * float(a.mean() - b.mean()), 2), "low": round(100 * float(low), 2),
            "high": round(100 * float(high), 2), "n_items": a.shape[1]}


def fmt(e: dict[str, float] | None) -> str:
    return "not run" if e is None else f"{e['mean']:.1f} [{e['low']:.1f}, {e['high']:.1f}]"


class Report:
    def __init__(self, runs: Runs, design: dict[str, Any], resamples: int) -> None:
        self.runs, self.design, self.B = runs, design, resamples
        self.grid = runs["grid"]
        self.lengths = sorted({v[1] for arm in self.grid.values() for items in arm.values() for v in items.values()
                               if v[0] in VARIANTS})
        self.arms = [a for a in design["arms"] if a in self.grid]
        self.records: list[dict[str, Any]] = []
        # the grid files' other tasks (HotpotQA): scored apart from the NIAH variants
        self.tasks = sorted({v[0] for arm in self.grid.values() for items in arm.values() for v in items.values()} - set(VARIANTS))

    def cell(self, arm: str, strict: bool = True, kind: str = "grid", **where: Any) -> dict[str, float] | None:
        runs = self.runs[kind].get(arm)
        if not runs:
            return None
        m, _ = matrix(runs, strict, **where)
        return estimate(m, self.B) if m.size else None

    def diff(self, a: str, b: str, strict: bool = True, kind: str = "grid", **where: Any) -> dict[str, float] | None:
        ra, rb = self.runs[kind].get(a), self.runs[kind].get(b)
        if not ra or not rb:
            return None
        ma, ia = matrix(ra, strict, **where)
        mb, ib = matrix(rb, strict, **where)
        shared = sorted(set(ia) & set(ib))
        if not shared:
            return None
        pa, pb = [ia.index(i) for i in shared], [ib.index(i) for i in shared]
        return difference(ma[:, pa], mb[:, pb], self.B)

    def effective_length(self, arm: str, threshold: float, variant: tuple[str, ...] = VARIANTS) -> int:
        best = 0
        for n in self.lengths:
            e = self.cell(arm, variant=variant, length=n)
            if e is None or e["mean"] < threshold:
                break
            best = n
        return best

    def score_tables(self) -> list[str]:
        cols = [f"{n // 1024}k" for n in self.lengths]
        out = []
        for strict in (True, False):
            label = "strict (every value)" if strict else "partial (share of values)"
            out += [f"### Essay grid, {label}, x100, mean [95% CI over seeds and items]", "",
                    "| variant | arm | seeds | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
            for variant in (*VARIANTS, VARIANTS):
                vname = "all four" if isinstance(variant, tuple) else variant
                for arm in self.arms:
                    cells = [self.cell(arm, strict, variant=variant, length=n) for n in self.lengths]
                    out.append(f"| {vname} | {arm} | {len(self.grid[arm])} | " + " | ".join(map(fmt, cells)) + " |")
                    self.records.append({"table": "grid", "strict": strict, "variant": vname, "arm": arm,
                                         "cells": dict(zip(cols, cells))})
            out.append("")
        return out

    def depth_table(self) -> list[str]:
        depths = sorted({v[2] for arm in self.grid.values() for items in arm.values() for v in items.values()})
        out = ["### Strict score by needle depth (all four variants), x100", "",
               "| arm | length | " + " | ".join(f"depth {d:g}" for d in depths) + " |", "|---|---|" + "---|" * len(depths)]
        for arm in self.arms:
            for n in self.lengths:
                cells = [self.cell(arm, variant=VARIANTS, length=n, depth=d) for d in depths]
                out.append(f"| {arm} | {n // 1024}k | " + " | ".join(map(fmt, cells)) + " |")
                self.records.append({"table": "depth", "arm": arm, "length": n, "cells": dict(zip(map(str, depths), cells))})
        return out + [""]

    def other_tables(self) -> list[str]:
        out = ["### Needle only (no haystack), strict, x100", "", "| arm | " + " | ".join(VARIANTS) + " |",
               "|---|" + "---|" * len(VARIANTS)]
        for arm in self.arms:
            cells = [self.cell(arm, kind="needle", variant=v) for v in VARIANTS]
            out.append(f"| {arm} | " + " | ".join(map(fmt, cells)) + " |")
            self.records.append({"table": "needle", "arm": arm, "cells": dict(zip(VARIANTS, cells))})
        for task in self.tasks:
            out += ["", f"### {task} (partial score = the task's metric), x100", "", "| arm | score |", "|---|---|"]
            for arm in self.arms:
                e = self.cell(arm, strict=False, variant=task)
                out.append(f"| {arm} | {fmt(e)} |")
                self.records.append({"table": task, "arm": arm, "cell": e})
        return out + [""]

    def seed_tables(self) -> list[str]:
        """Each training seed's own means (strict, x100; no interval): how far seeds of one arm disagree."""
        cols = [f"{n // 1024}k" for n in self.lengths]

        def mean(arm: str, seed: int, strict: bool = True, kind: str = "grid", **where: Any) -> str:
            runs = self.runs[kind].get(arm) or {}
            if seed not in runs:
                return "not run"
            m, _ = matrix({seed: runs[seed]}, strict, **where)
            return f"{100 * m.mean():.1f}" if m.size else "-"

        out = ["### Per training seed, strict, x100 (each seed's mean; the intervals above pool the seeds)", "",
               "| arm | seed | " + " | ".join(f"all four {c}" for c in cols) + " | multi_value " + " | multi_value ".join(cols)
               + " | needle only | " + " | ".join(f"{t} (partial)" for t in self.tasks) + " |",
               "|---|---|" + "---|" * (2 * len(cols) + 1 + len(self.tasks))]
        for arm in self.arms:
            for seed in sorted(self.grid[arm]):
                cells = [mean(arm, seed, variant=VARIANTS, length=n) for n in self.lengths]
                cells += [mean(arm, seed, variant="multi_value", length=n) for n in self.lengths]
                cells.append(mean(arm, seed, kind="needle", variant=VARIANTS))
                cells += [mean(arm, seed, strict=False, variant=t) for t in self.tasks]
                out.append(f"| {arm} | {seed} | " + " | ".join(cells) + " |")
        return out + [""]

    def completeness(self) -> str:
        """Which of the design's trainings have predictions: verdicts are final only when all have."""
        planned: dict[str, list[int]] = self.design["seeds"]
        missing = {a: [s for s in seeds if s not in self.grid.get(a, {})] for a, seeds in planned.items()}
        total, absent = sum(map(len, planned.values())), sum(map(len, missing.values()))
        self.records.append({"table": "completeness", "planned": total, "present": total - absent,
                             "missing": {a: m for a, m in missing.items() if m}})
        if not absent:
            return f"All {total} runs of the design (arms x seeds) are in: the verdicts are final."
        gaps = ", ".join(f"{a} seed{'s' if len(m) > 1 else ''} {' '.join(map(str, m))}" for a, m in missing.items() if m)
        return (f"**Provisional**: {total - absent} of the design's {total} runs (arms x seeds) are in; missing: {gaps}. "
                "A verdict is final only once every run it compares is in.")

    def verdicts(self) -> list[str]:
        d, top, low = self.design, self.lengths[-1], self.lengths[0]
        thr, cliff = d["threshold"], d["depth0_cliff_points"]
        out = [f"## Verdicts (rules of DESIGN.md; threshold {thr}, strict scores, longest length {top // 1024}k)", "",
               self.completeness(), ""]

        def line(name: str, holds: bool | None, text: str) -> None:
            word = "not run" if holds is None else ("holds" if holds else "does not hold")
            out.append(f"- **{name}: {word}.** {text}")
            self.records.append({"table": "verdict", "finding": name, "holds": holds, "evidence": text})

        dt, dl = self.diff("sft1", "base", variant=VARIANTS, length=top), self.diff("sft1", "base", variant=VARIANTS, length=low)
        line("1. SFT1 drifts below the base, more with length", None if dt is None or dl is None else
             dt["high"] < 0 and dt["mean"] < dl["mean"], f"SFT1 - base at {top // 1024}k {fmt(dt)}, at {low // 1024}k {fmt(dl)}.")
        sn, bn = self.cell("sft2", kind="needle", variant=VARIANTS), self.cell("base", kind="needle", variant=VARIANTS)
        g = self.diff("sft2", "sft3", variant=VARIANTS)
        line("2. SFT2 learns a shortcut (good without haystack, worse than SFT3 with one)",
             None if sn is None or g is None else sn["mean"] >= thr and g["high"] < 0,
             f"SFT2 needle-only {fmt(sn)} (base {fmt(bn)}); SFT2 - SFT3 over the grid {fmt(g)}.")
        s3 = self.cell("sft3", variant=VARIANTS, length=top)
        u = self.diff("sft3", "base", variant=VARIANTS, length=top)
        eff = {a: self.effective_length(a, thr) for a in self.arms}
        line(f"3. SFT3 (~1k training) generalises to {top // 1024}k",
             None if s3 is None or u is None else s3["mean"] >= thr and u["low"] > 0,
             f"SFT3 at {top // 1024}k {fmt(s3)}; SFT3 - base {fmt(u)}; effective lengths: "
             + ", ".join(f"{a} {n // 1024 if n else 0}k" for a, n in eff.items()) + ".")
        leads = {v: self.diff("sft4", "sft3", variant=v, length=top) for v in VARIANTS}
        mv = leads["multi_value"]
        line("4. SFT4's lead over SFT3 is largest on multi-value at the longest length",
             None if mv is None else mv["low"] > 0 and all(mv["mean"] >= (e or mv)["mean"] for e in leads.values()),
             "SFT4 - SFT3 at " + f"{top // 1024}k: " + "; ".join(f"{v} {fmt(e)}" for v, e in leads.items())
             + f". Length or compute: SFT4 - SFT3-matched on multi_value {fmt(self.diff('sft4', 'sft3m', variant='multi_value', length=top))}.")
        cells = []
        for n in self.lengths:
            zero = self.cell("sft3", variant=VARIANTS, length=n, depth=0.0)
            rest = self.cell("sft3", variant=VARIANTS, length=n, depth=tuple(x for x in (0.25, 0.5, 0.75, 1.0)))
            cells.append((n, zero, rest))
        z, r = cells[-1][1], cells[-1][2]
        line("5. The depth-0 cliff persists (SFT3, needle at the start)",
             None if z is None or r is None else z["high"] < r["low"] and r["mean"] - z["mean"] >= cliff,
             "SFT3 depth 0 vs depths 0.25-1: " + "; ".join(f"{n // 1024}k {fmt(a)} vs {fmt(b)}" for n, a, b in cells)
             + f" (rule: a gap of at least {cliff} points with disjoint intervals at {top // 1024}k).")
        return out + [""]


def plot(rep: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*VARIANTS, VARIANTS]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), sharey=True)
    for ax, variant in zip(axes, panels):
        for arm in rep.arms:
            ests = [rep.cell(arm, variant=variant, length=n) for n in rep.lengths]
            xs = [n for n, e in zip(rep.lengths, ests) if e]
            ys = [e for e in ests if e]
            ax.plot(xs, [e["mean"] for e in ys], marker="o", label=f"{arm} ({len(rep.grid[arm])} seed{'s' * (len(rep.grid[arm]) > 1)})")
            ax.fill_between(xs, [e["low"] for e in ys], [e["high"] for e in ys], alpha=0.15)
        ax.axhline(rep.design["threshold"], color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_xticks(rep.lengths, [f"{n // 1024}k" for n in rep.lengths])
        ax.set_title("all four" if isinstance(variant, tuple) else variant)
        ax.set_xlabel("context tokens")
        ax.set_ylim(-2, 102)
    axes[0].set_ylabel("strict accuracy (x100), 95% CI")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--design", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resamples", type=int, default=10000)
    args = parser.parse_args(argv)
    design = json.loads(args.design.read_text(encoding="utf-8"))
    rep = Report(read_runs(args.predictions), design, args.resamples)
    lines = [f"# {design['title']}", "", *rep.verdicts(), "## Tables", "", *rep.score_tables(), *rep.depth_table(),
             *rep.other_tables(), *rep.seed_tables()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines), encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(rep.records, indent=1) + "\n", encoding="utf-8")
    plot(rep, args.out / "accuracy_vs_length.png")
    print("\n".join(lines[:12]))
    print(f"pilot32k_report: {len(rep.records)} records -> {args.out}/results.md, results.json, accuracy_vs_length.png")


if __name__ == "__main__":
    main()
