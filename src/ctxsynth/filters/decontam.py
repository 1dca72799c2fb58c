"""Decontamination: drop records sharing word n-grams (13 by default) with evaluation items.

Evaluation files are JSONL, one item a line, in either layout (told apart per line):
- LongBench v1 records: `_id`, `input`, `context`, `answers` (the files the user downloaded);
- ctxsynth `EvalItem` rows: `id`, `prompt`, `answers` (written by ctxsynth's own eval builders).
Texts are normalised (SQuAD/LongBench rules) and split into words. Every n-gram of every eval
item goes into an index that remembers the first item holding it. Record texts shorter than n
words (most questions) are checked with `short_n`-grams against a second index instead, and
count as contaminated only when all of their short n-grams hit one item. A contaminated record
is dropped with reason "contaminated" and the matching item's id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ctxsynth.errors import InputError
from ctxsynth.eval.metrics import normalize_answer
from ctxsynth.filters.config import DecontamConfig, FiltersConfig
from ctxsynth.filters.registry import Filter, FilterContext
from ctxsynth.filters.verdict import Verdict
from ctxsynth.io import read_user_jsonl
from ctxsynth.records import Seed

log = logging.getLogger(__name__)


def _grams(words: Sequence[str], n: int) -> Iterable[int]:
    return (hash(" ".join(words[i : i + n])) for i in range(len(words) - n + 1))


def eval_texts(row: dict) -> tuple[str, str]:
    """(item id, all its text) from a LongBench record or an EvalItem row."""
    answers = row.get("answers") or []
    answers = [answers] if isinstance(answers, str) else [str(a) for a in answers]
    if "_id" in row:
        return str(row["_id"]), "\n".join([row.get("input") or "", row.get("context") or "", *answers])
    if "id" in row and "prompt" in row:
        return str(row["id"]), "\n".join([row["prompt"], *answers])
    raise InputError("neither a LongBench record (_id, input, context) nor an EvalItem row (id, prompt)")


class NgramIndex:
    def __init__(self, n: int, short_n: int) -> None:
        self.n = n
        self.short_n = short_n
        self.long: dict[int, str] = {}
        self.short: dict[int, str] = {}
        self.items = 0

    def add(self, item_id: str, text: str) -> None:
        words = normalize_answer(text).split()
        for g in _grams(words, self.n):
            self.long.setdefault(g, item_id)
        if self.short_n and self.short_n < self.n:
            for g in _grams(words, self.short_n):
                self.short.setdefault(g, item_id)
        self.items += 1

    def add_files(self, paths: Iterable[str | Path]) -> None:
        for path in paths:
            # .jsonl or .jsonl.gz (what `ctxsynth eval --write-items` writes)
            for line_no, record in read_user_jsonl(Path(path)):
                try:
                    self.add(*eval_texts(record))
                except ValueError as e:
                    raise InputError(f"{path}:{line_no}: {e}") from None
        log.info("decontamination index: %d eval items, %d %d-grams", self.items, len(self.long), self.n)

    def match(self, text: str) -> tuple[str, int, int] | None:
        """(eval item id, grams hit, grams checked) of the best-matching item, or None."""
        words = normalize_answer(text).split()
        if len(words) >= self.n:
            grams, index = list(_grams(words, self.n)), self.long
        elif self.short_n and len(words) >= self.short_n:
            grams, index = list(_grams(words, self.short_n)), self.short
        else:
            return None
        hits = Counter(index[g] for g in grams if g in index)
        if not hits:
            return None
        item, count = hits.most_common(1)[0]
        if index is self.short and count < len(grams):  # a short text must be wholly inside the item
            return None
        return item, count, len(grams)


class DecontamFilter:
    name = "decontam"
    global_pass = False  # judges each record alone

    def __init__(self, config: DecontamConfig, index: NgramIndex | None = None) -> None:
        self.config = config
        if index is None:
            index = NgramIndex(config.n, config.short_n)
            index.add_files(config.eval_files)
        self.index = index

    def check(self, seeds: Sequence[Seed]) -> list[Verdict]:
        return self.check_texts([{"instruction": s.instruction, "answer": s.answers[0] if s.answers else "",
                                  "context": s.context} for s in seeds])

    def check_texts(self, fields: Sequence[dict[str, str | None]]) -> list[Verdict]:
        """One verdict per record, given its texts by field name (instruction, answer, context)."""
        return [self._check(f) for f in fields]

    def _check(self, texts: dict[str, str | None]) -> Verdict:
        for name in self.config.fields:
            text = texts.get(name)
            found = self.index.match(text) if text else None
            if found and found[1] >= min(self.config.min_hits, found[2]):
                item, hits, total = found
                return Verdict.drop("contaminated", f"{name} shares {hits}/{total} n-grams with eval item {item}",
                                    eval_id=item, field=name, hits=hits, grams=total)
        return Verdict.kept()


def from_config(config: FiltersConfig, context: FilterContext) -> list[Filter]:
    """Enabled with no eval files, the filter would keep everything: it is left out."""
    enabled = config.decontam.enabled and config.decontam.eval_files
    return [DecontamFilter(config.decontam)] if enabled else []
