"""Benchmark: does the context-reliance score tell a pair's real context from negatives, and does it
do better than trivial baselines?

For N SQuAD and N HotpotQA seeds, each pair's real human context is scored against three negatives:
- random: another seed's context of similar length sharing no Wikipedia title (the old benchmark);
- same_topic: a context on the same topic that does not contain any accepted answer (SQuAD: another
  paragraph of the same article; HotpotQA: two of the record's own distractor paragraphs, which
  HotpotQA retrieved for the question by TF-IDF); pairs without one are left out of this type;
- inserted: the random context with the first accepted answer pasted in at a random word boundary.
"hard" is same_topic and inserted together. Scores: `reliance` (the filter's score: answer log-prob
with minus without the context), its parts, `question` (log-prob of the question with minus without
the context: ctxsynth.filters.reliance.question_reliance_scores), `reliance+question`, and the trivial
baselines `containment` (an accepted answer occurs in the context, normalised) and `bm25`
(question-context BM25, bm25s, over all contexts of the run); `reliance+bm25` is the mean of the
two scores' percentiles (does reliance add anything to BM25?). AUC = P(real > negative) + 0.5 P(tie),
with a 95% bootstrap interval over pairs (ctxsynth.eval.stats.grouped_auc); differences are paired.
Scores are cached under --cache-dir, so a rerun is instant.

    python benchmarks/reliance_auc.py                    # 200 + 200 seeds
    python benchmarks/reliance_auc.py --n 20 --filters   # quick look, with drop counts
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctxsynth.eval.metrics import contains_normalized
from ctxsynth.eval.stats import Estimate, average_ranks, grouped_auc, grouped_auc_difference
from ctxsynth.filters import FiltersConfig, apply_filters
from ctxsynth.filters.reliance import build_scorer, question_reliance_scores
from ctxsynth.records import Seed
from ctxsynth.seeds import SeedsConfig, read_seeds

KINDS = ("random", "same_topic", "inserted")
SETS = {"random": ("random",), "same_topic": ("same_topic",), "inserted": ("inserted",), "hard": ("same_topic", "inserted")}
BASELINES = ("containment", "bm25")
Scores = dict[str, dict[str, list[float | None]]]  # score name -> context kind -> one value per seed


def titles(seed: Seed) -> set[str]:
    return {seed.meta.get("title", ""), *seed.meta.get("supporting_titles", [])} - {""}


def unrelated_context(seed: Seed, pool: Sequence[Seed], rng: random.Random, candidates: int = 30) -> str:
    """Another seed's context of similar length that shares no Wikipedia title with this one."""
    own, length = titles(seed), len((seed.context or "").split())
    eligible = [s for s in rng.sample(list(pool), min(len(pool), candidates * 3))
                if s.context and s.context != seed.context and not (titles(s) & own)][:candidates]
    return min(eligible, key=lambda s: abs(len((s.context or "").split()) - length)).context or ""


def answer_free(text: str, seed: Seed) -> bool:
    return not any(contains_normalized(text, a) for a in seed.answers)


def same_topic_context(seed: Seed, articles: dict[str, list[str]], rng: random.Random) -> str | None:
    """A same-topic context without the answer, or None: SQuAD another paragraph of the article
    (the closest in length), HotpotQA two of the record's distractor paragraphs (title + text)."""
    paragraphs = seed.meta.get("paragraphs")
    if paragraphs is not None:
        gold = set(seed.meta.get("supporting_titles", []))
        texts = [f"{p['title']}\n{''.join(p['sentences']).strip()}" for p in paragraphs if p["title"] not in gold]
        eligible = [t for t in texts if answer_free(t, seed)]
        rng.shuffle(eligible)
        return "\n\n".join(eligible[:len(gold) or 2]) if len(eligible) >= 2 else None
    others = [c for c in articles.get(seed.meta.get("title", ""), []) if c != seed.context and answer_free(c, seed)]
    length = len((seed.context or "").split())
    return min(others, key=lambda c: (abs(len(c.split()) - length), c)) if others else None


def inserted_context(text: str, answer: str, rng: random.Random) -> str:
    """`text` with `answer` pasted in at a random word boundary."""
    words = text.split(" ")
    at = rng.randint(0, len(words))
    return " ".join([*words[:at], answer.strip(), *words[at:]])


def load(n: int, sample_seed: int) -> list[Seed]:
    seeds: list[Seed] = []
    for source in ("squad", "hotpotqa"):
        seeds.extend(s for s in read_seeds(SeedsConfig(source=source, limit=n, sample_seed=sample_seed))
                     if isinstance(s, Seed))
    return seeds


def negatives(seeds: list[Seed], sample_seed: int) -> dict[str, list[str | None]]:
    rng = random.Random(sample_seed)  # the random contexts are those of the earlier benchmark
    random_ctx: list[str | None] = [unrelated_context(s, seeds, rng) for s in seeds]
    articles: dict[str, list[str]] = defaultdict(list)
    for s in read_seeds(SeedsConfig(source="squad")):
        if isinstance(s, Seed) and s.context and s.context not in articles[s.meta["title"]]:
            articles[s.meta["title"]].append(s.context)
    rng = random.Random(f"{sample_seed}-hard")
    same = [same_topic_context(s, articles, rng) for s in seeds]
    inserted: list[str | None] = [inserted_context(c or "", s.answers[0], rng) for s, c in zip(seeds, random_ctx, strict=True)]
    return {"random": random_ctx, "same_topic": same, "inserted": inserted}


def bm25_scores(questions: list[str], contexts: dict[str, list[str | None]]) -> dict[str, list[float | None]]:
    """BM25 of each (question, context) pair, the index holding every distinct context of the run."""
    import bm25s

    corpus = sorted({c for cs in contexts.values() for c in cs if c})
    row = {c: i for i, c in enumerate(corpus)}
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    query_tokens = bm25s.tokenize(questions, stopwords="en", return_ids=False, show_progress=False)
    out: dict[str, list[float | None]] = {k: [] for k in contexts}
    for i, tokens in enumerate(query_tokens):
        known = [t for t in tokens if t in retriever.vocab_dict]
        scores = retriever.get_scores(known) if known else np.zeros(len(corpus))
        for kind, cs in contexts.items():
            text = cs[i]
            out[kind].append(float(scores[row[text]]) if text else None)
    return out


def score_all(seeds: list[Seed], contexts: dict[str, list[str | None]], args: argparse.Namespace) -> Scores:
    config = FiltersConfig().reliance
    config.model, config.dtype = args.model, args.dtype
    cache = Path(args.cache_dir) / "scores.sqlite" if args.cache_dir else None
    scorer = build_scorer(config, cache)
    kinds = ["real", *KINDS]
    start, cpu = time.perf_counter(), time.process_time()
    triples = [(contexts[k][i], s.instruction, s.answers[0]) for k in kinds for i, s in enumerate(seeds)]
    present = [t for t in triples if t[0]]
    lp = iter(scorer.mean_logprobs(present + [(None, s.instruction, s.answers[0]) for s in seeds]))
    with_ctx = [next(lp).mean_logprob if t[0] else None for t in triples]
    alone = [next(lp).mean_logprob for _ in seeds]
    pairs = [(c, s.instruction) for k in kinds for c, s in zip(contexts[k], seeds, strict=True) if c]
    question = iter(question_reliance_scores(scorer, pairs) if args.question else [])
    print(f"scoring: {len(present)} contexts x {1 + args.question} probes, wall {time.perf_counter() - start:.1f}s, "
          f"process CPU {time.process_time() - cpu:.1f}s, dtype {scorer.dtype}")
    bm25 = bm25_scores([s.instruction for s in seeds], contexts)
    scores: Scores = defaultdict(dict)
    for j, kind in enumerate(kinds):
        block = with_ctx[j * len(seeds):(j + 1) * len(seeds)]
        scores["with_context"][kind] = block
        scores["reliance"][kind] = [None if w is None else w - a for w, a in zip(block, alone, strict=True)]
        if args.question:
            scores["question"][kind] = [next(question) if c else None for c in contexts[kind]]
            scores["reliance+question"][kind] = [None if r is None or q is None else r + q for r, q in
                                                 zip(scores["reliance"][kind], scores["question"][kind], strict=True)]
        scores["containment"][kind] = [None if c is None else float(not answer_free(c, s))
                                       for c, s in zip(contexts[kind], seeds, strict=True)]
        scores["bm25"][kind] = bm25[kind]
    scores["reliance+bm25"] = rank_mean(scores["reliance"], scores["bm25"])
    return scores


def percentiles(values: dict[str, list[float | None]]) -> dict[str, list[float | None]]:
    """Each value's average rank among all values of the score (every kind), divided by their count."""
    flat = [v for vs in values.values() for v in vs if v is not None]
    ranks = iter((average_ranks(flat) / len(flat)).tolist())
    return {k: [None if v is None else next(ranks) for v in vs] for k, vs in values.items()}


def rank_mean(a: dict[str, list[float | None]], b: dict[str, list[float | None]]) -> dict[str, list[float | None]]:
    """The mean of two scores' percentiles: a label-free combination of scores on different scales."""
    pa, pb = percentiles(a), percentiles(b)
    return {k: [None if x is None or y is None else (x + y) / 2 for x, y in zip(pa[k], pb[k], strict=True)] for k in pa}


def auc_inputs(values: dict[str, list[float | None]], kinds: Sequence[str], idx: Sequence[int]) -> tuple[list[float], list[int], list[float], list[int]]:
    """(positives, their pair ids, negatives, their pair ids) over the pairs in idx that have a negative."""
    keep = [i for i in idx if values["real"][i] is not None and any(values[k][i] is not None for k in kinds)]
    neg = [(values[k][i], i) for i in keep for k in kinds if values[k][i] is not None]
    return [values["real"][i] for i in keep], keep, [v for v, _ in neg], [g for _, g in neg]  # type: ignore[misc]


def table(scores: Scores, idx: Sequence[int], resamples: int) -> dict[str, dict[str, Estimate]]:
    return {name: {s: grouped_auc(*auc_inputs(values, kinds, idx), resamples=resamples)
                   for s, kinds in SETS.items()} for name, values in scores.items()}


def print_table(name: str, aucs: dict[str, dict[str, Estimate]]) -> None:
    print(f"\n{name}: AUC real vs negative, 95% CI (n = pairs)")
    print("| score | " + " | ".join(SETS) + " |\n|---|" + "---|" * len(SETS))
    for score, row in aucs.items():
        print(f"| {score} | " + " | ".join(f"{e.format(1, 3)} (n={e.n})" for e in row.values()) + " |")


def differences(scores: Scores, idx: Sequence[int], candidates: Sequence[str], resamples: int) -> None:
    print("\nAUC difference (candidate - baseline), paired bootstrap over pairs, 95% CI")
    print("| candidate | baseline | " + " | ".join(SETS) + " |\n|---|---|" + "---|" * len(SETS))
    for cand in candidates:
        for base in BASELINES:
            cells = []
            for kinds in SETS.values():
                pa, ga, na, gn = auc_inputs(scores[base], kinds, idx)
                pb, _, nb, _ = auc_inputs(scores[cand], kinds, idx)
                cells.append(grouped_auc_difference((pa, na), (pb, nb), ga, gn, resamples=resamples).format(1, 3))
            print(f"| {cand} | {base} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="seeds per dataset")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--cache-dir", default="runs/bench_reliance", help="score/LLM caches ('' = none)")
    ap.add_argument("--no-question", dest="question", action="store_false", help="skip the question probe (half the passes)")
    ap.add_argument("--score-first", type=int, default=0,
                    help="score only the first K pairs of each dataset (0 = all); negatives still come from all 2N")
    ap.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--filters", action="store_true", help="also run apply_filters and print drop counts")
    ap.add_argument("--dump", default="", help="write per-pair scores and contexts as JSON here")
    args = ap.parse_args(argv)

    print(f"command: {' '.join(sys.argv)}\nmachine: {platform.node()} {platform.machine()} python {platform.python_version()}")
    seeds = [s for s in load(args.n, args.sample_seed) if s.context]
    contexts = {"real": [s.context for s in seeds], **negatives(seeds, args.sample_seed)}
    if args.score_first:
        keep = [i for task in ("single_doc_qa", "multi_doc_qa")
                for i in [j for j, s in enumerate(seeds) if s.task == task][:args.score_first]]
        seeds, contexts = [seeds[i] for i in keep], {k: [v[i] for i in keep] for k, v in contexts.items()}
    scores = score_all(seeds, contexts, args)
    subsets = {"squad": [i for i, s in enumerate(seeds) if s.task == "single_doc_qa"],
               "hotpotqa": [i for i, s in enumerate(seeds) if s.task == "multi_doc_qa"],
               "extractive": [i for i, s in enumerate(seeds) if not answer_free(s.context or "", s)],
               "non-extractive": [i for i, s in enumerate(seeds) if answer_free(s.context or "", s)],
               "all": list(range(len(seeds)))}
    every = {}
    for name, idx in subsets.items():
        if idx:
            every[name] = table(scores, idx, args.resamples)
            print_table(name, every[name])
    candidates = [c for c in ("reliance", "question", "reliance+question", "reliance+bm25") if c in scores]
    differences(scores, subsets["all"], candidates, args.resamples)
    if args.dump:
        rows = [{"id": s.id, "task": s.task, "contexts": {k: contexts[k][i] for k in contexts},
                 "scores": {n: {k: v[i] for k, v in by.items()} for n, by in scores.items()}} for i, s in enumerate(seeds)]
        Path(args.dump).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if args.filters:
        start = time.perf_counter()
        _, _, stats = apply_filters(seeds, FiltersConfig(), run_seed=0, cache_dir=Path(args.cache_dir) if args.cache_dir else None)
        print(f"filters ({time.perf_counter() - start:.1f}s): " + json.dumps(stats, sort_keys=True))
    hard = every["all"]
    best = max(BASELINES, key=lambda b: hard[b]["hard"].mean)
    print(f"auc: {hard['reliance']['hard'].mean:.4f} n: {hard['reliance']['hard'].n} "
          f"baseline_auc: {hard[best]['hard'].mean:.4f} baseline: {best}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
