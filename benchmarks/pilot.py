"""The pilot study's general SFT data: short SQuAD v2 dev rows (seed half), the same in every arm.

    python benchmarks/pilot.py general OUT.jsonl [--n 1600] [--seed 0]

PAPER.md §1 mixes ShareGPT into every arm; offline, the shared general data is short reading
comprehension: a SQuAD paragraph (~150 words), a question, the shortest accepted answer. Rows are
a seeded sample of the seed partition (ctxsynth.eval.partition keeps the evaluation half out), one
`{"messages": [user, assistant]}` per line, so `ctxsynth train` mixes them via data.general_files.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from ctxsynth.io import atomic_write_text, dumps
from ctxsynth.records import Seed
from ctxsynth.seeds.builtin import squad_source
from ctxsynth.seeds.config import SeedsConfig

PROMPT = "{context}\n\nAnswer the question using the passage above, in a few words.\nQuestion: {question}"


def general_rows(n: int, seed: int) -> list[dict[str, Any]]:
    seeds = [c.item for c in squad_source(SeedsConfig(source="squad")) if isinstance(c.item, Seed)]
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(len(seeds)), min(n, len(seeds))))
    rows = []
    for i in picked:
        s = seeds[i]
        answer = min(s.answer, key=len) if isinstance(s.answer, list) else s.answer
        user = PROMPT.format(context=s.context, question=s.instruction)
        rows.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                     "meta": {"seed_id": s.id, "source": "squad_v2_dev_seed_half"}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("general", help="write the shared general SFT rows")
    g.add_argument("out", type=Path)
    g.add_argument("--n", type=int, default=1600)
    g.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = general_rows(args.n, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "".join(dumps(r) + "\n" for r in rows))
    print(f"general: {len(rows)} rows -> {args.out}")


if __name__ == "__main__":
    main()
