"""Helpers of the Table 3 experiment (benchmarks/table3.sh): seed splits and the equal token budget.

    python benchmarks/table3.py seeds OUT_DIR [--n 300] [--writer-n 1000] [--general FILE]
    python benchmarks/table3.py cap IN.jsonl OUT.jsonl --tokens 400000 [--seed 0]
    python benchmarks/table3.py twin CAPPED.jsonl CONTEXT_FREE.jsonl OUT.jsonl

`seeds` writes OUT_DIR/seeds.jsonl (the experiment's seed pairs: half SQuAD v2, half HotpotQA, from
the seed partitions, so no held-out evaluation question is a seed, and none of the general rows'
questions) and OUT_DIR/writer_seeds.jsonl (the context writer's human triples: the same sources,
disjoint from the experiment seeds by id, question and context, and from the general rows).
`cap` keeps a seeded random order of a messages file's rows until their tokens (SmolLM2 tokenizer,
message contents) reach the budget, so every arm trains on at most the same number of long-data
tokens; it prints `cap: <kept>/<rows> rows, <tokens> tokens` and writes OUT.meta.json with them.
`twin` keeps the rows of an export's context_free file whose ids the capped file kept: the same pairs
without their contexts (the coherence diagnostic's other arm).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from ctxsynth.io import atomic_write_text, dumps
from ctxsynth.records import Seed, to_dict
from ctxsynth.seeds.builtin import hotpotqa_source, squad_source
from ctxsynth.seeds.config import SeedsConfig


def _pool(source: str) -> list[Seed]:
    read = squad_source if source == "squad" else hotpotqa_source
    return [c.item for c in read(SeedsConfig(source=source)) if isinstance(c.item, Seed)]


def _slim(seed: Seed) -> dict[str, Any]:
    """The seed without bulky meta (HotpotQA keeps all 10 paragraphs there): the file travels."""
    row = to_dict(seed)
    row["meta"] = {k: v for k, v in seed.meta.items() if k in ("dataset", "split", "title", "type", "level")}
    return row


def split_seeds(n: int, writer_n: int, general_ids: set[str], seed: int = 0) -> tuple[list[Seed], list[Seed]]:
    """(experiment seeds, writer triples): n and writer_n split evenly over SQuAD and HotpotQA.
    SQuAD is split by article, so no writer paragraph is an experiment paragraph."""
    rng = random.Random(seed)
    experiment: list[Seed] = []
    writer: list[Seed] = []
    for source in ("squad", "hotpotqa"):
        pool = [s for s in _pool(source) if s.id not in general_ids]
        group = (lambda s: s.meta.get("title", s.id)) if source == "squad" else (lambda s: s.id)
        keys = sorted({group(s) for s in pool})
        rng.shuffle(keys)
        rank = {k: i for i, k in enumerate(keys)}
        pool.sort(key=lambda s: (rank[group(s)], s.id))
        take = n // 2 if source == "squad" else n - n // 2
        experiment += pool[:take]
        used = {group(s) for s in pool[:take]}
        rest = [s for s in pool[take:] if group(s) not in used]
        writer += rest[: writer_n // 2 if source == "squad" else writer_n - writer_n // 2]
    return experiment, writer


def cmd_seeds(args: argparse.Namespace) -> None:
    general: set[str] = set()
    if args.general:
        for line in Path(args.general).read_text(encoding="utf-8").splitlines():
            if line.strip():
                general.add(json.loads(line).get("meta", {}).get("seed_id", ""))
    experiment, writer = split_seeds(args.n, args.writer_n, general)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, seeds in (("seeds.jsonl", experiment), ("writer_seeds.jsonl", writer)):
        atomic_write_text(args.out / name, "".join(dumps(_slim(s)) + "\n" for s in seeds))
    overlap = {s.id for s in experiment} & {s.id for s in writer}
    assert not overlap, overlap
    print(f"seeds: {len(experiment)} experiment seeds, {len(writer)} writer triples (disjoint) -> {args.out}")


def cap_rows(rows: list[dict[str, Any]], tokens: int, seed: int, count) -> tuple[list[dict[str, Any]], int]:
    """Rows in a seeded random order until the next one would pass `tokens`; (kept, their tokens)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    kept, total = [], 0
    for i in order:
        n = count(rows[i])
        if total + n > tokens:
            break
        kept.append(rows[i])
        total += n
    return kept, total


def cmd_cap(args: argparse.Namespace) -> None:
    from ctxsynth.tokenize import load_tokenizer

    tok = load_tokenizer("smollm2")
    rows = _rows(args.inp)

    def count(row: dict[str, Any]) -> int:
        return sum(len(ids) for ids in tok.encode_batch([m["content"] for m in row["messages"]]))

    kept, total = cap_rows(rows, args.tokens, args.seed, count)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "".join(dumps(r) + "\n" for r in kept))
    meta = {"source": str(args.inp), "rows_in": len(rows), "rows": len(kept), "tokens": total, "budget": args.tokens}
    atomic_write_text(Path(str(args.out) + ".meta.json"), json.dumps(meta) + "\n")
    print(f"cap: {len(kept)}/{len(rows)} rows, {total} tokens (budget {args.tokens}) -> {args.out}")


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cmd_twin(args: argparse.Namespace) -> None:
    keep = {row["id"] for row in _rows(args.capped)}
    rows = [row for row in _rows(args.context_free) if row["id"] in keep]
    if len(rows) != len(keep):
        raise SystemExit(f"twin: {len(keep) - len(rows)} capped ids are missing from {args.context_free}")
    atomic_write_text(args.out, "".join(dumps(r) + "\n" for r in rows))
    meta = {"source": str(args.context_free), "rows": len(rows), "twin_of": str(args.capped)}
    atomic_write_text(Path(str(args.out) + ".meta.json"), json.dumps(meta) + "\n")
    print(f"twin: {len(rows)} context-free rows -> {args.out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seeds", help="experiment seeds and disjoint writer triples")
    s.add_argument("out", type=Path)
    s.add_argument("--n", type=int, default=300)
    s.add_argument("--writer-n", type=int, default=1000)
    s.add_argument("--general", help="the general rows (their seed ids are kept out of both files)")
    c = sub.add_parser("cap", help="cap a messages file at a token budget")
    c.add_argument("inp", type=Path)
    c.add_argument("out", type=Path)
    c.add_argument("--tokens", type=int, required=True)
    c.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("twin", help="the context-free rows of the pairs a capped file kept")
    t.add_argument("capped", type=Path)
    t.add_argument("context_free", type=Path)
    t.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    {"seeds": cmd_seeds, "cap": cmd_cap, "twin": cmd_twin}[args.cmd](args)


if __name__ == "__main__":
    main()
