"""Benchmark: assembly to exact token budgets vs the naive RULER-style binary search.

Pool: real text (Paul Graham essays and Wikipedia lead extracts, cut into ~600-word documents),
each turned into a synthetic record whose answer (a unique passphrase) is appended to its context.
Fast path: ctxsynth.assemble.Assembler (each document tokenized once, exact count from cached counts
plus boundary windows). Naive path, same candidates and template: binary search over the number of
distractors, re-rendering and re-tokenizing the whole chat at every step (bounds as in RULER's
find_optimal_haystack_size: estimate tokens per document from a small render, search [1, 3x]).
The naive path is slow, so it runs on a subset and is extrapolated per sample (said in the output).
An audit re-tokenizes assembled samples in full to check counts and budgets independently.

    python benchmarks/assemble.py                     # 2,000 samples x 32k tokens, pool 2,000
    python benchmarks/assemble.py --samples 100 --pool 300 --naive-samples 5 --audit 100
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections.abc import Sequence

from ctxsynth.assemble import AssembleConfig, Assembler
from ctxsynth.assemble.corpus import load_corpus
from ctxsynth.assemble.selection import Screen
from ctxsynth.records import Sample, Seed, Synthesized
from ctxsynth.rng import rng_for
from ctxsynth.tokenize import load_tokenizer


def build_pool(size: int) -> list[Synthesized]:
    essays = load_corpus("essays", 600)
    wiki = load_corpus("wiki", 600)
    texts = [t for pair in zip(essays, wiki) for _, t in pair] + [t for _, t in essays[len(wiki):] + wiki[len(essays):]]
    if len(texts) < size:
        raise SystemExit(f"only {len(texts)} documents available for a pool of {size}")
    pool = []
    for i, text in enumerate(texts[:size]):
        answer = f"passphrase{i:05d}"
        seed = Seed(id=f"seed{i:05d}", task="hotpotqa", instruction="What is the passphrase given in the passages?",
                    answer=answer)
        pool.append(Synthesized(id=f"rec{i:05d}", task="hotpotqa", seed=seed, context=f"{text} The passphrase is {answer}.",
                                provenance={}, verdicts={}))
    return pool


def naive_sample(assembler: Assembler, record: Synthesized, target: int) -> int:
    """Token count of the naive exact fit for one record (binary search, full re-tokenization)."""
    cfg, tok = assembler.config, assembler.tokenizer
    rng = rng_for(assembler.run_seed, "assemble", record.id)
    golds = assembler.golds(record)
    gold = golds[0]  # the benchmark's records have one gold document each
    head, tail = assembler.templates.for_task(record.task).split(record.seed.instruction)
    screen = Screen(gold, record.seed.answers, cfg.leak_exempt, cfg.near_duplicate_threshold)
    pool = [d.text for d in assembler.source.candidates(assembler.query(record, golds), rng) if screen.accept(d)]
    slot_draw = rng.random()

    def render(k: int) -> str:
        docs = pool[:k]
        slot = int(slot_draw * (k + 1))
        context = assembler.joiner.join([*docs[:slot], gold.text, *docs[slot:]])
        messages = [{"role": "user", "content": head + context + tail}, {"role": "assistant", "content": record.seed.answers[0]}]
        return tok.render_chat(messages)

    per_doc = len(tok.encode(render(4))) / 4
    low, high = 1, min(max(int(target / per_doc * 3), 2), len(pool))
    best_count = len(tok.encode(render(0)))
    while low <= high:
        mid = (low + high) // 2
        n = len(tok.encode(render(mid)))
        if n <= target:
            best_count, low = n, mid + 1
        else:
            high = mid - 1
    return best_count


def audit(assembler: Assembler, samples: Sequence[Sample]) -> int:
    """Samples whose full re-tokenization matches the recorded count and span (and fits the target)."""
    ok = 0
    for sample in samples:
        ids = assembler.tokenizer.encode(assembler.tokenizer.render_chat(sample.messages))
        fits = sample.tokens["target"] is None or len(ids) <= sample.tokens["target"]
        ok += int(len(ids) == sample.tokens["total"] and fits)
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--target", type=int, default=32768)
    parser.add_argument("--naive-samples", type=int, default=20, help="subset for the naive baseline")
    parser.add_argument("--audit", type=int, default=None, help="samples re-tokenized in full (default: all)")
    parser.add_argument("--tokenizer", default="smollm2")
    args = parser.parse_args(argv)

    pool = build_pool(args.pool)
    records = [pool[i % len(pool)] for i in range(args.samples)]
    config = AssembleConfig(tokenizer=args.tokenizer, target_tokens=args.target, distractors="same_task")
    load_tokenizer(args.tokenizer)  # library import and loading are shared by both paths: not timed
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    assembler = Assembler(config, pool, run_seed=0)
    indexed = time.perf_counter()
    samples = [assembler.assemble(r) for r in records]
    finished = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    made = [s for s in samples if isinstance(s, Sample)]
    fast_total = finished - started
    tokens = sum(s.tokens["total"] for s in made)
    within = sum(1 for s in made if s.tokens["total"] <= s.tokens["target"])
    fills = [s.tokens["total"] / s.tokens["target"] for s in made]
    print(f"pool: {len(pool)} documents; samples: {len(made)}/{len(samples)} assembled "
          f"(rejected: {len(samples) - len(made)}); target {args.target} tokens; tokenizer {assembler.tokenizer.name}")
    print(f"fast: index {indexed - started:.1f}s + assemble {finished - indexed:.1f}s = {fast_total:.1f}s; "
          f"{len(samples) / fast_total:.1f} samples/s, {tokens / fast_total:,.0f} tokens/s (index time included); "
          f"assemble only {len(samples) / (finished - indexed):.1f} samples/s")
    print(f"fast: fill min {min(fills):.4f} mean {sum(fills) / len(fills):.4f} of target; counting={assembler.count_method}; "
          f"peak RSS {peak / 1024:.0f} MiB (before indexing {rss_before / 1024:.0f} MiB)")

    subset = random.Random(1).sample(records, min(args.naive_samples, len(records)))
    naive_started = time.perf_counter()
    naive_counts = [naive_sample(assembler, r, args.target) for r in subset]
    naive_per_sample = (time.perf_counter() - naive_started) / len(subset)
    print(f"naive: measured on {len(subset)} samples, extrapolated per sample to {len(samples)}: "
          f"{naive_per_sample:.2f}s/sample, {1 / naive_per_sample:.2f} samples/s, "
          f"{sum(naive_counts) / len(naive_counts) / naive_per_sample:,.0f} tokens/s; "
          f"est. {naive_per_sample * len(samples) / 60:.1f} min for all")

    audited = made if args.audit is None else made[: args.audit]
    audit_started = time.perf_counter()
    exact = audit(assembler, audited)
    print(f"audit: {exact}/{len(audited)} samples re-tokenized in full match the recorded count and fit the target "
          f"({time.perf_counter() - audit_started:.0f}s)")
    ratio = naive_per_sample / (fast_total / len(samples))
    print(f"speedup: {ratio:.1f}x within_budget: {within}/{len(samples)}")
    return 0 if within == len(samples) and exact == len(audited) else 1


if __name__ == "__main__":
    sys.exit(main())
