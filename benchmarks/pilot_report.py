"""Tables and a plot for the NIAH pilot study, every number with n and a 95% bootstrap interval.

    python benchmarks/pilot_report.py --out DIR --grid base=RUN sft1=RUN ... [--needle base=RUN ...]
        [--compare sft1:base sft3:sft2 ...]

RUN is a `ctxsynth eval` run folder (predictions.jsonl, or a predictions file itself, .gz too).
`--grid` runs hold the essay-haystack test grid, `--needle` runs the needle-only tests. Writes
DIR/results.md (tables), DIR/results.json (the same numbers) and DIR/accuracy_vs_length.png.
Scores are per-item (share of expected values found, x100); an arm's score is the item mean with a
percentile bootstrap interval; `A:B` rows give A - B with a paired bootstrap interval over the
same items (ctxsynth.eval.stats). The default comparisons are the pilot's questions (PAPER.md §1):
each arm against the base, SFT3 against SFT2 (the haystack's credit), SFT4 against SFT3.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ctxsynth.eval.stats import Estimate, bootstrap, paired_difference
from ctxsynth.io import open_text

VARIANTS = ("single", "multi_key", "multi_query", "multi_value")
DEFAULT_COMPARE = ("sft1:base", "sft2:base", "sft3:base", "sft4:base", "sft3:sft2", "sft3:sft1", "sft4:sft3")

Scores = dict[str, float]  # item id -> score
Arm = dict[tuple[str, int], Scores]  # (variant, length) -> item scores


def read_predictions(run: Path) -> list[dict[str, Any]]:
    path = run
    if run.is_dir():
        path = next((run / n for n in ("predictions.jsonl", "predictions.jsonl.gz") if (run / n).exists()), run / "predictions.jsonl")
    if not path.exists():
        raise SystemExit(f"{run}: no predictions.jsonl(.gz) here; give a `ctxsynth eval` run folder")
    with open_text(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def group(rows: Iterable[dict[str, Any]]) -> Arm:
    """NIAH rows by (variant, length); any other task (held-out QA) as (task, 0)."""
    cells: Arm = defaultdict(dict)
    for row in rows:
        meta = row.get("meta") or {}
        if row["task"].startswith("niah_"):
            key = (meta.get("variant") or row["task"].removeprefix("niah_"), int(meta.get("length") or 0))
        else:
            key = (row["task"], 0)
        cells[key][row["id"]] = float(row["score"])
    return dict(cells)


def pooled(arm: Arm, variant: str, length: int | None = None) -> Scores:
    out: Scores = {}
    for (v, n), scores in arm.items():
        if v == variant and (length is None or n == length):
            out.update(scores)
    return out


def parse_arms(pairs: list[str] | None) -> dict[str, Arm]:
    arms: dict[str, Arm] = {}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep:
            raise SystemExit(f"{pair!r}: expected NAME=RUN_FOLDER")
        arms[name] = group(read_predictions(Path(path)))
    return arms


def _lengths(arms: dict[str, Arm]) -> list[int]:
    return sorted({n for arm in arms.values() for (v, n) in arm if v in VARIANTS})


def other_tasks(arms: dict[str, Arm]) -> list[str]:
    return sorted({v for arm in arms.values() for (v, _) in arm if v not in VARIANTS})


def score_table(arms: dict[str, Arm], title: str, by_length: bool) -> tuple[list[str], list[dict[str, Any]]]:
    lengths = _lengths(arms) if by_length else []
    cols = ["all", *[f"{n // 1024}k" if n else "-" for n in lengths]]
    lines = [f"### {title}", "", "| variant | arm | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    records = []
    for variant in (*VARIANTS, *other_tasks(arms)):
        for name, arm in arms.items():
            cells = [bootstrap(list(pooled(arm, variant).values()))] if pooled(arm, variant) else []
            cells += [bootstrap(list(pooled(arm, variant, n).values())) for n in lengths
                      if variant in VARIANTS and pooled(arm, variant, n)]
            if not cells:
                continue
            lines.append(f"| {variant} | {name} | " + " | ".join(e.format() for e in cells) + " |" * (len(cols) - len(cells)) + " |")
            records.append({"table": title, "variant": variant, "arm": name,
                            "cells": dict(zip(cols, [_est(e) for e in cells]))})
    lines += ["", f"n per cell: {_n_note(arms, by_length)}", ""]
    return lines, records


def _n_note(arms: dict[str, Arm], by_length: bool) -> str:
    any_arm = next(iter(arms.values()))
    per_variant = {v: len(pooled(any_arm, v)) for v in (*VARIANTS, *other_tasks(arms))}
    per_cell = sorted({len(s) for (v, _), s in any_arm.items() if v in VARIANTS})
    note = "all = " + ", ".join(f"{v} {n}" for v, n in per_variant.items() if n)
    return note + (f"; one length = {'/'.join(map(str, per_cell))} items" if by_length else "")


def _est(e: Estimate) -> dict[str, float]:
    return {"mean": round(e.mean * 100, 2), "low": round(e.low * 100, 2), "high": round(e.high * 100, 2), "n": e.n}


def difference_table(arms: dict[str, Arm], pairs: Iterable[str], title: str) -> tuple[list[str], list[dict[str, Any]]]:
    lengths = _lengths(arms)
    top = max(lengths) if lengths else 0
    cols = ["all"] + ([f"at {top // 1024}k"] if top and len(lengths) > 1 else [])
    lines = [f"### {title}", "", "| A - B | variant | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    records = []
    for pair in pairs:
        a, _, b = pair.partition(":")
        if a not in arms or b not in arms:
            continue
        for variant in (*VARIANTS, *other_tasks(arms)):
            if not pooled(arms[a], variant):
                continue
            cells = [paired_difference(pooled(arms[b], variant), pooled(arms[a], variant))]
            if len(cols) > 1 and variant in VARIANTS:
                cells.append(paired_difference(pooled(arms[b], variant, top), pooled(arms[a], variant, top)))
            mark = ["**" if e.excludes_zero() else "" for e in cells]
            lines.append(f"| {a} - {b} | {variant} | " + " | ".join(f"{m}{e.format()}{m}" for m, e in zip(mark, cells))
                         + " |" * (len(cols) - len(cells)) + " |")
            records.append({"table": title, "a": a, "b": b, "variant": variant, "cells": dict(zip(cols, [_est(e) for e in cells]))})
    lines += ["", "Bold: the 95% paired-bootstrap interval excludes 0.", ""]
    return lines, records


def plot(arms: dict[str, Arm], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = _lengths(arms)
    fig, axes = plt.subplots(1, len(VARIANTS), figsize=(4 * len(VARIANTS), 3.4), sharey=True)
    for ax, variant in zip(axes, VARIANTS):
        for name, arm in arms.items():
            ests = [bootstrap(list(pooled(arm, variant, n).values())) for n in lengths if pooled(arm, variant, n)]
            xs = [n for n in lengths if pooled(arm, variant, n)]
            if not ests:
                continue
            ax.plot(xs, [e.mean * 100 for e in ests], marker="o", label=name)
            ax.fill_between(xs, [e.low * 100 for e in ests], [e.high * 100 for e in ests], alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [f"{n // 1024}k" for n in lengths])
        ax.set_title(variant)
        ax.set_xlabel("context tokens")
        ax.set_ylim(-2, 102)
    axes[0].set_ylabel("accuracy (x100), 95% CI")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--grid", nargs="+", required=True, help="NAME=RUN for the essay-haystack grid")
    parser.add_argument("--needle", nargs="*", help="NAME=RUN for the needle-only tests")
    parser.add_argument("--compare", nargs="*", default=list(DEFAULT_COMPARE), help="A:B pairs, A - B")
    args = parser.parse_args(argv)
    grid, needle = parse_arms(args.grid), parse_arms(args.needle)
    lines = ["## NIAH accuracy (x100) with 95% bootstrap intervals", ""]
    records: list[dict[str, Any]] = []
    for arms, title, by_length in ((grid, "Essay-haystack grid", True), (needle, "Needle only (no haystack)", False)):
        if arms:
            more, recs = score_table(arms, title, by_length)
            lines += more
            records += recs
    lines += ["## Differences (A - B, x100) with 95% paired-bootstrap intervals", ""]
    for arms, title in ((grid, "Essay-haystack grid"), (needle, "Needle only")):
        if arms:
            more, recs = difference_table(arms, args.compare, title)
            lines += more
            records += recs
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines), encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    plot(grid, args.out / "accuracy_vs_length.png")
    print("\n".join(lines))
    print(f"pilot_report: {len(records)} rows -> {args.out}/results.md, results.json, accuracy_vs_length.png")


if __name__ == "__main__":
    main()
