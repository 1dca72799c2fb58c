"""Benchmark: does the context-reliance score tell a pair's real context from an unrelated one?

For N SQuAD and N HotpotQA seeds, each pair is scored twice with the embedded model (or --model):
with its real human context, and with a random unrelated context of similar length (another seed's
context, same pool, no shared Wikipedia title, the closest word count among 30 random candidates).
The AUC is the probability that a real-context score beats a random-context score (Mann-Whitney,
ties count half), over all real x random score pairs; the paired win rate compares each pair's two
scores directly. With --filters the whole filter stage also runs on the same seeds (closed-book
probe with the embedded model through the transformers backend) and its drop counts are printed.
Scores are cached under --cache-dir, so a rerun is instant; delete the folder to measure time.

    python benchmarks/reliance_auc.py                    # 200 + 200 seeds
    python benchmarks/reliance_auc.py --n 20 --filters   # quick look, with drop counts
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ctxsynth.filters import FiltersConfig, apply_filters
from ctxsynth.filters.reliance import build_scorer, reliance_scores
from ctxsynth.records import Seed
from ctxsynth.seeds import SeedsConfig, read_seeds


def titles(seed: Seed) -> set[str]:
    return {seed.meta.get("title", ""), *seed.meta.get("supporting_titles", [])} - {""}


def unrelated_context(seed: Seed, pool: Sequence[Seed], rng: random.Random, candidates: int = 30) -> str:
    """Another seed's context of similar length that shares no Wikipedia title with this one."""
    own, length = titles(seed), len((seed.context or "").split())
    eligible = [s for s in rng.sample(list(pool), min(len(pool), candidates * 3))
                if s.context and s.context != seed.context and not (titles(s) & own)][:candidates]
    return min(eligible, key=lambda s: abs(len((s.context or "").split()) - length)).context or ""


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(positive > negative) + 0.5 P(tie), over all pairs (rank form, O(n log n))."""
    ranked = sorted([(v, 1) for v in positives] + [(v, 0) for v in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mean_rank = (i + j + 1) / 2  # ranks are 1-based
        rank_sum += mean_rank * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def load(n: int, sample_seed: int) -> list[Seed]:
    seeds: list[Seed] = []
    for source in ("squad", "hotpotqa"):
        seeds.extend(s for s in read_seeds(SeedsConfig(source=source, limit=n, sample_seed=sample_seed))
                     if isinstance(s, Seed))
    return seeds


def report(name: str, real: list[dict], fake: list[dict]) -> None:
    r, f = [x["reliance"] for x in real], [x["reliance"] for x in fake]
    wins = sum(a > b for a, b in zip(r, f, strict=True)) / len(r)
    print(f"{name:9s} n={len(r):4d} auc={auc(r, f):.4f} paired_win={wins:.3f} "
          f"reliance real mean={statistics.fmean(r):+.3f} median={statistics.median(r):+.3f} | "
          f"random mean={statistics.fmean(f):+.3f} median={statistics.median(f):+.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="seeds per dataset")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--cache-dir", default="runs/bench_reliance", help="score/LLM caches ('' = none)")
    ap.add_argument("--filters", action="store_true", help="also run apply_filters and print drop counts")
    ap.add_argument("--dump", default="", help="write per-pair scores as JSON here")
    args = ap.parse_args(argv)

    seeds = [s for s in load(args.n, args.sample_seed) if s.context]
    rng = random.Random(args.sample_seed)
    randoms = [unrelated_context(s, seeds, rng) for s in seeds]
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    config = FiltersConfig()
    config.reliance.model, config.reliance.dtype = args.model, args.dtype
    scorer = build_scorer(config.reliance, cache_dir / "scores.sqlite" if cache_dir else None)
    start, cpu = time.perf_counter(), time.process_time()
    real = reliance_scores(scorer, [(s.context, s.instruction, s.answers[0]) for s in seeds])
    fake = reliance_scores(scorer, [(c, s.instruction, s.answers[0]) for s, c in zip(seeds, randoms, strict=True)])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    tokens = sum(x["prompt_tokens"] + x["answer_tokens"] for x in real + fake)
    print(f"scoring: {len(seeds)} pairs x 2 contexts (+ no-context), {tokens} context-side tokens, "
          f"wall {wall:.1f}s, process CPU {cpu:.1f}s, dtype {scorer.dtype}")
    for task in ("single_doc_qa", "multi_doc_qa"):
        idx = [i for i, s in enumerate(seeds) if s.task == task]
        if idx:
            report(task, [real[i] for i in idx], [fake[i] for i in idx])
    report("all", real, fake)
    if args.dump:
        rows = [{"id": s.id, "task": s.task, "real": r, "random": f} for s, r, f in zip(seeds, real, fake, strict=True)]
        Path(args.dump).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if args.filters:
        start = time.perf_counter()
        _, rejected, stats = apply_filters(seeds, config, run_seed=0, cache_dir=cache_dir)
        print(f"filters ({time.perf_counter() - start:.1f}s): " + json.dumps(stats, sort_keys=True))
    r, f = [x["reliance"] for x in real], [x["reliance"] for x in fake]
    print(f"auc: {auc(r, f):.4f} n: {len(r)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
