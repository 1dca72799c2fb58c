"""Benchmark: does the context-reliance score rank datasets like training does?

The paper's instruction-context coherence diagnostic trains on a dataset with and without its
contexts and compares the scores: a near-zero gap means the answers do not depend on the contexts.
Reliance is a training-free proxy of it. Given the synthesize-stage output of several datasets (the
Table 3 arms: human contexts, context synthesis with each generator, instruction synthesis) and each
dataset's trained gap (score with contexts minus score without, on the same evaluation items), this
prints each dataset's mean reliance and gap with 95% intervals and Spearman's rank correlation
between them, with a bootstrap interval that resamples each dataset's records and, where per-item
gaps are given, the evaluation items.

    python benchmarks/reliance_rank.py --dataset human=runs/x/human --dataset cs=runs/x/cs \\
        --gaps gaps.json

A dataset is a run directory (its synth/ shards are read), a synth/ folder or one JSONL file of
synthesized records. gaps.json maps a dataset name to its gap: a number, or {item id: with - without}
per evaluation item. Scores are cached under --cache-dir. Last line: `spearman: <v> datasets: <k>`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ctxsynth.eval.stats import Estimate, bootstrap, spearman
from ctxsynth.filters import FiltersConfig
from ctxsynth.filters.reliance import build_scorer, reliance_scores
from ctxsynth.io import read_jsonl, read_shards
from ctxsynth.records import Synthesized, synthesized_from_dict


def read_records(path: Path) -> list[Synthesized]:
    """Synthesized records of a run directory, a synth/ folder or a JSONL file."""
    if path.is_file():
        rows = list(read_jsonl(path))
    else:
        rows = list(read_shards(path / "synth" if (path / "synth").is_dir() else path))
    if not rows:
        raise SystemExit(f"{path}: no synthesized records (give a run directory, its synth/ folder or a JSONL file)")
    return [synthesized_from_dict(r) for r in rows]


def read_gaps(path: Path, names: list[str]) -> dict[str, float | dict[str, float]]:
    gaps = json.loads(path.read_text(encoding="utf-8"))
    missing = [n for n in names if n not in gaps]
    if missing:
        raise SystemExit(f"{path}: no gap for dataset(s) {missing}; it has {sorted(gaps)}")
    return {n: gaps[n] for n in names}


def gap_estimate(gap: float | dict[str, float], resamples: int) -> Estimate:
    if isinstance(gap, dict):
        return bootstrap(list(gap.values()), resamples=resamples)
    return Estimate(float(gap), float(gap), float(gap), 0)


def rank_interval(reliance: dict[str, list[float]], gaps: dict[str, float | dict[str, float]], resamples: int,
                  seed: int = 0) -> tuple[float, float, float]:
    """Spearman rho of dataset means and gaps, with a bootstrap interval (records and items resampled)."""
    names = list(reliance)
    point = spearman([float(np.mean(reliance[n])) for n in names], [gap_estimate(gaps[n], 1).mean for n in names])
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        means = [float(np.mean(rng.choice(reliance[n], len(reliance[n])))) for n in names]
        g = [gaps[n] for n in names]
        sampled = [float(np.mean(rng.choice(list(x.values()), len(x)))) if isinstance(x, dict) else float(x) for x in g]
        draws.append(spearman(means, sampled))
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return point, float(low), float(high)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", required=True, help="NAME=PATH (run dir, synth/ or JSONL); repeat")
    ap.add_argument("--gaps", required=True, help="JSON: name -> gap (number or {item id: with - without})")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--limit", type=int, default=0, help="score at most this many records per dataset (0 = all)")
    ap.add_argument("--cache-dir", default="runs/bench_reliance", help="score cache ('' = none)")
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args(argv)
    print(f"command: {' '.join(sys.argv)}")

    datasets = dict(item.split("=", 1) for item in args.dataset)
    gaps = read_gaps(Path(args.gaps), list(datasets))
    config = FiltersConfig().reliance
    config.model = args.model
    scorer = build_scorer(config, Path(args.cache_dir) / "scores.sqlite" if args.cache_dir else None)
    reliance: dict[str, list[float]] = {}
    print("| dataset | records | mean reliance [95% CI] | trained gap [95% CI] (n items) |\n|---|---|---|---|")
    for name, path in datasets.items():
        records = read_records(Path(path))[:args.limit or None]
        triples = [(r.context, r.seed.instruction, r.seed.answers[0]) for r in records if r.context]
        reliance[name] = [s["reliance"] for s in reliance_scores(scorer, triples)]
        gap = gap_estimate(gaps[name], args.resamples)
        print(f"| {name} | {len(triples)} | {bootstrap(reliance[name], resamples=args.resamples).format(1, 3)} | "
              f"{gap.format(1, 3)} ({gap.n or 'no items'}) |")
    if len(reliance) < 2:
        raise SystemExit("ranking needs at least two datasets")
    rho, low, high = rank_interval(reliance, gaps, args.resamples)
    print(f"Spearman rho (mean reliance vs trained gap) = {rho:.3f} [{low:.3f}, {high:.3f}] over {len(reliance)} datasets")
    print(f"spearman: {rho:.4f} datasets: {len(reliance)}")


if __name__ == "__main__":
    main()
