"""Benchmark: does the context-reliance score rank datasets like training does?

The paper's instruction-context coherence diagnostic trains on a dataset with and without its
contexts and compares the scores: a near-zero gap means the answers do not depend on the contexts.
Reliance is a training-free proxy of it. Given the synthesize-stage output of several datasets (the
Table 3 arms: human contexts, context synthesis with each generator, instruction synthesis) and each
dataset's trained gap (score with contexts minus score without, on the same evaluation items), this
prints each dataset's mean score with a 95% interval, for reliance, the question probe (--question)
and the trivial baselines (answer containment, question-context BM25, the number of records), and
Spearman's rank correlation of each with the gaps: a bootstrap interval that resamples each
dataset's records and the evaluation items (the same items for every dataset when they share them),
and the exact permutation p-value. With k datasets, the smallest two-sided p is 2/k!.

    python benchmarks/reliance_rank.py --dataset human=runs/x/human --dataset cs=runs/x/cs \\
        --gaps gaps.json
    python benchmarks/reliance_rank.py --dataset human=runs/x/human --train-data human=runs/data/human.jsonl \\
        --predictions human=runs/eval/human/predictions.jsonl,runs/eval/human_nc/predictions.jsonl ...

A dataset is a run directory (its synth/ shards are read), a synth/ folder or one JSONL file of
synthesized records; --train-data keeps only the records whose id is in that training file (the
rows the arm trained on). Gaps come from gaps.json (a dataset name -> a number, or {item id:
with - without}) or from two `ctxsynth eval` predictions files per dataset (--predictions, per-item
`score` x100, items matched by id). Scores are cached under --cache-dir.
Last line: `spearman: <reliance rho> datasets: <k>`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from pathlib import Path

import numpy as np
from reliance_auc import answer_free, bm25_scores

from ctxsynth.eval.stats import Estimate, bootstrap, spearman
from ctxsynth.filters import FiltersConfig
from ctxsynth.filters.reliance import build_scorer, question_reliance_scores, reliance_scores
from ctxsynth.filters.scoring import AnswerScorer
from ctxsynth.io import read_jsonl, read_shards
from ctxsynth.records import Synthesized, synthesized_from_dict

Gap = float | dict[str, float]


def named(items: list[str] | None, flag: str) -> dict[str, str]:
    """NAME=VALUE arguments as a dict."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"{flag} {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def read_records(path: Path, keep_ids: set[str] | None = None) -> list[Synthesized]:
    """Synthesized records of a run directory, a synth/ folder or a JSONL file (only keep_ids, if given)."""
    if path.is_file():
        rows = list(read_jsonl(path))
    else:
        rows = list(read_shards(path / "synth" if (path / "synth").is_dir() else path))
    if not rows:
        raise SystemExit(f"{path}: no synthesized records (give a run directory, its synth/ folder or a JSONL file)")
    records = [synthesized_from_dict(r) for r in rows]
    if keep_ids is not None:
        records = [r for r in records if r.id in keep_ids]
        if not records:
            raise SystemExit(f"{path}: none of its records is in the training data given with --train-data")
    return records


def train_ids(path: Path) -> set[str]:
    """The ids of a training JSONL file's rows (each row has an `id`)."""
    ids = {str(row["id"]) for row in read_jsonl(path) if "id" in row}
    if not ids:
        raise SystemExit(f"{path}: no rows with an 'id' field (give the arm's training JSONL)")
    return ids


def prediction_gaps(spec: str) -> dict[str, float]:
    """'WITH,WITHOUT' predictions files -> {item id: (score with - score without) x 100}."""
    paths = spec.split(",")
    if len(paths) != 2:
        raise SystemExit(f"--predictions {spec!r}: expected NAME=WITH.jsonl,WITHOUT.jsonl")
    with_ctx, without = ({str(r["id"]): float(r["score"]) for r in read_jsonl(Path(p))} for p in paths)
    shared = sorted(set(with_ctx) & set(without))
    if not shared or len(shared) != len(with_ctx) or len(shared) != len(without):
        raise SystemExit(f"--predictions {spec}: the two files must score the same items "
                         f"({len(with_ctx)} and {len(without)} items, {len(shared)} shared)")
    return {i: 100 * (with_ctx[i] - without[i]) for i in shared}


def read_gaps(path: Path, names: list[str]) -> dict[str, Gap]:
    gaps = json.loads(path.read_text(encoding="utf-8"))
    missing = [n for n in names if n not in gaps]
    if missing:
        raise SystemExit(f"{path}: no gap for dataset(s) {missing}; it has {sorted(gaps)}")
    return {n: gaps[n] for n in names}


def gap_estimate(gap: Gap, resamples: int) -> Estimate:
    if isinstance(gap, dict):
        return bootstrap(list(gap.values()), resamples=resamples)
    return Estimate(float(gap), float(gap), float(gap), 0)


def sample(records: list[Synthesized], limit: int, seed: int) -> list[Synthesized]:
    """At most `limit` records drawn at random (in their file order); all of them when limit is 0."""
    if not limit or len(records) <= limit:
        return records
    keep = set(random.Random(seed).sample(range(len(records)), limit))
    return [r for i, r in enumerate(records) if i in keep]


def score_datasets(records: dict[str, list[Synthesized]], scorer: AnswerScorer, question: bool) -> dict[str, dict[str, list[float]]]:
    """score name -> dataset -> one value per record."""
    flat = [(name, r) for name, rs in records.items() for r in rs]
    triples = [(r.context, r.seed.instruction, r.seed.answers[0]) for _, r in flat]
    columns: dict[str, list[float]] = {
        "reliance": [s["reliance"] for s in reliance_scores(scorer, triples)],
        "containment": [float(not answer_free(r.context or "", r.seed)) for _, r in flat],
        "bm25": [v or 0.0 for v in bm25_scores([r.seed.instruction for _, r in flat],
                                               {"real": [r.context for _, r in flat]})["real"]]}
    if question:
        columns["question"] = question_reliance_scores(scorer, [(r.context or "", r.seed.instruction) for _, r in flat])
    out: dict[str, dict[str, list[float]]] = {k: {n: [] for n in records} for k in columns}
    for k, values in columns.items():
        for (name, _), v in zip(flat, values, strict=True):
            out[k][name].append(v)
    return out


def gap_draws(gaps: dict[str, Gap], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, datasets) bootstrap means of the gaps; items drawn jointly when every dataset has the same ids."""
    names = list(gaps)
    dicts = [g for g in gaps.values() if isinstance(g, dict)]
    joint = len(dicts) == len(names) and all(set(d) == set(dicts[0]) for d in dicts)
    if joint:
        ids = sorted(dicts[0])
        matrix = np.array([[gaps[n][i] for i in ids] for n in names])  # type: ignore[index]
        idx = rng.integers(0, len(ids), size=(resamples, len(ids)))
        return matrix[:, idx].mean(axis=2).T
    cols = []
    for n in names:
        g = gaps[n]
        if isinstance(g, dict):
            v = np.array(list(g.values()))
            cols.append(v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1))
        else:
            cols.append(np.full(resamples, float(g)))
    return np.stack(cols, axis=1)


def permutation_p(a: list[float], b: list[float]) -> float:
    """Exact two-sided p of Spearman's rho: the share of orderings of b with |rho| >= the observed."""
    observed = abs(spearman(a, b))
    rhos = [abs(spearman(a, list(p))) for p in itertools.permutations(b)]
    return float(np.mean([r >= observed - 1e-12 for r in rhos]))


def rank_rows(scores: dict[str, dict[str, list[float]]], gaps: dict[str, Gap], resamples: int,
              seed: int = 0) -> list[tuple[str, float, float, float, float]]:
    """(score, rho, low, high, permutation p) of each score's dataset means against the gaps."""
    names = list(gaps)
    rng = np.random.default_rng(seed)
    gap_point = [gap_estimate(gaps[n], 1).mean for n in names]
    gap_boot = gap_draws(gaps, resamples, rng)
    rows = []
    for score, by_name in scores.items():
        means = [float(np.mean(by_name[n])) for n in names]
        draws = []
        for r in range(resamples):
            sampled = [float(np.mean(rng.choice(by_name[n], len(by_name[n])))) for n in names]
            draws.append(spearman(sampled, gap_boot[r].tolist()))
        low, high = np.nanpercentile(draws, [2.5, 97.5])
        rows.append((score, spearman(means, gap_point), float(low), float(high), permutation_p(means, gap_point)))
    return rows


def gap_order(gaps: dict[str, Gap], resamples: int, seed: int = 0) -> str:
    """How stable the gaps' order is under item resamples: the whole order, and each neighbouring pair."""
    names = list(gaps)
    point = [gap_estimate(g, 1).mean for g in gaps.values()]
    draws = gap_draws(gaps, resamples, np.random.default_rng(seed))
    whole = float(np.mean([(np.argsort(d) == np.argsort(point)).all() for d in draws]))
    ranked = sorted(range(len(names)), key=lambda i: -point[i])
    pairs = [f"{names[a]} > {names[b]} in {np.mean(draws[:, a] > draws[:, b]):.0%}" for a, b in zip(ranked, ranked[1:])]
    return f"the same order in {whole:.0%} of item resamples; " + ", ".join(pairs)


def order(values: dict[str, float]) -> str:
    return " > ".join(sorted(values, key=lambda n: -values[n]))


def report(scores: dict[str, dict[str, list[float]]], gaps: dict[str, Gap], resamples: int) -> float:
    names = list(gaps)
    print("\n| dataset | records scored | " + " | ".join(f"mean {s} [95% CI]" for s in scores if s != "records")
          + " | trained gap [95% CI] (n items) |\n|---|---|" + "---|" * len(scores))
    for n in names:
        cells = [bootstrap(scores[s][n], resamples=resamples).format(1, 3) for s in scores if s != "records"]
        gap = gap_estimate(gaps[n], resamples)
        print(f"| {n} | {len(scores['reliance'][n])} of {int(scores['records'][n][0])} | " + " | ".join(cells) + f" | {gap.format(1, 2)} ({gap.n or 'no items'}) |")
    gap_means = {n: gap_estimate(gaps[n], 1).mean for n in names}
    k = len(names)
    print(f"\ntrained gap order: {order(gap_means)}; {gap_order(gaps, resamples)}")
    print(f"\nSpearman rho with the trained gap over {k} datasets (95% bootstrap CI over records and items; "
          f"exact permutation p, smallest possible {2 / np.prod(range(1, k + 1)):.3f})")
    print("| score | order of dataset means | rho [95% CI] | permutation p |\n|---|---|---|---|")
    rho = float("nan")
    for score, r, low, high, p in rank_rows(scores, gaps, resamples):
        means = {n: float(np.mean(scores[score][n])) for n in names}
        print(f"| {score} | {order(means)} | {r:.2f} [{low:.2f}, {high:.2f}] | {p:.3f} |")
        rho = r if score == "reliance" else rho
    return rho


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", required=True, help="NAME=PATH (run dir, synth/ or JSONL); repeat")
    ap.add_argument("--train-data", action="append", help="NAME=JSONL: score only the records whose id is in it; repeat")
    ap.add_argument("--gaps", default="", help="JSON: name -> gap (number or {item id: with - without})")
    ap.add_argument("--predictions", action="append",
                    help="NAME=WITH.jsonl,WITHOUT.jsonl: per-item gaps (x100) from two eval predictions files; repeat")
    ap.add_argument("--question", action="store_true", help="also the question probe (twice the passes)")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--limit", type=int, default=0,
                    help="score a random sample of at most this many records per dataset (0 = all)")
    ap.add_argument("--sample-seed", type=int, default=0, help="seed of the --limit sample")
    ap.add_argument("--cache-dir", default="runs/bench_reliance", help="score cache ('' = none)")
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args(argv)
    print(f"command: {' '.join(sys.argv)}")

    datasets, trained = named(args.dataset, "--dataset"), named(args.train_data, "--train-data")
    if (not args.gaps) == (not args.predictions):
        raise SystemExit("give the gaps either with --gaps FILE or with --predictions per dataset")
    if args.gaps:
        gaps = read_gaps(Path(args.gaps), list(datasets))
    else:
        specs = named(args.predictions, "--predictions")
        if set(specs) != set(datasets):
            raise SystemExit(f"--predictions names {sorted(specs)} differ from --dataset names {sorted(datasets)}")
        gaps = {n: prediction_gaps(specs[n]) for n in datasets}
    if len(datasets) < 2:
        raise SystemExit("ranking needs at least two datasets")
    every = {n: [r for r in read_records(Path(p), train_ids(Path(trained[n])) if n in trained else None) if r.context]
             for n, p in datasets.items()}
    records = {n: sample(rs, args.limit, args.sample_seed) for n, rs in every.items()}
    config = FiltersConfig().reliance
    config.model = args.model
    scorer = build_scorer(config, Path(args.cache_dir) / "scores.sqlite" if args.cache_dir else None)
    scores = score_datasets(records, scorer, args.question)
    scores["records"] = {n: [float(len(rs))] for n, rs in every.items()}  # before --limit
    rho = report(scores, gaps, args.resamples)
    print(f"spearman: {rho:.4f} datasets: {len(datasets)}")


if __name__ == "__main__":
    main()
