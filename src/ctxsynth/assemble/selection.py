"""Picking distractors: leak screening, then a document count or a token budget filled greedily.

The budget fill walks the candidates in the strategy's order and takes every clean document that
still fits (estimated with cached counts), until the gap is within tolerance. Documents too large
for the remaining gap are kept aside; if the gap stays open, the first clean one of them is cut at a
sentence end to close it. The caller then measures the exact count and corrects any overshoot.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ctxsynth.assemble.documents import Doc, jaccard
from ctxsynth.eval.metrics import normalize_answer

_SCAN_FLOOR = 256  # candidates examined at least before giving up on closing the gap with whole docs


@dataclass
class Screen:
    """The leak check: no answer inside a distractor, no near-duplicate of any gold document, and
    never one of the gold record's own documents (multi-document samples have several golds)."""

    gold: Doc
    answers: Sequence[str]
    exempt: Sequence[str]
    threshold: float
    enabled: bool = True
    others: Sequence[Doc] = ()  # further gold documents of the same sample
    leaks: int = 0
    near_duplicates: int = 0
    needles: list[str] = field(init=False)

    def __post_init__(self) -> None:
        exempt = {normalize_answer(e) for e in self.exempt}
        normalized = (normalize_answer(a) for a in self.answers)
        self.needles = [n for n in normalized if len(n) >= 2 and n not in exempt]

    @property
    def checks_answer(self) -> bool:
        return self.enabled and bool(self.needles)

    def accept(self, doc: Doc) -> bool:
        if any(doc.id == g.id for g in self.others):
            return False  # the sample's own gold documents are placed as golds, never as distractors
        if not self.enabled:
            return True
        if any(doc.contains(n) for n in self.needles):
            self.leaks += 1
            return False
        for gold in (self.gold, *self.others):
            if doc.text == gold.text or (self.threshold < 1.0 and jaccard(doc, gold) >= self.threshold):
                self.near_duplicates += 1
                return False
        return True


@dataclass
class Selection:
    docs: list[Doc]  # in selection order (the last is dropped first when over budget)
    scanned: int = 0
    exhausted: bool = False
    trimmed: str | None = None  # id of the distractor that was cut to fit


def by_count(candidates: Iterator[Doc], screen: Screen, n: int) -> Selection:
    """The first n clean candidates."""
    chosen: list[Doc] = []
    scanned = 0
    for doc in candidates:
        if len(chosen) >= n:
            break
        scanned += 1
        if screen.accept(doc):
            chosen.append(doc)
    return Selection(chosen, scanned, exhausted=len(chosen) < n)


def by_tokens(
    candidates: Iterator[Doc],
    screen: Screen,
    room: int,
    tolerance: int,
    separator_cost: int,
    trim: Callable[[Doc, int], Doc | None] | None,
) -> Selection:
    """Fill `room` tokens (estimated: document tokens + separator_cost each) to within `tolerance`."""
    chosen: list[Doc] = []
    too_large: list[Doc] = []
    scanned = 0
    exhausted = True
    for doc in candidates:
        if room <= tolerance or (scanned >= _SCAN_FLOOR and scanned >= 8 * (len(chosen) + 1)):
            exhausted = False
            break
        scanned += 1
        cost = doc.n_tokens + separator_cost
        if cost > room:
            if trim is not None and len(too_large) < 8:
                too_large.append(doc)
            continue
        if screen.accept(doc):
            chosen.append(doc)
            room -= cost
    selection = Selection(chosen, scanned, exhausted=exhausted and room > tolerance)
    if trim is not None and room > tolerance and room > separator_cost:
        for doc in itertools.islice(too_large, 8):
            if not screen.accept(doc):
                continue
            cut = trim(doc, room - separator_cost)
            if cut is not None:
                selection.docs.append(cut)
                selection.trimmed = cut.id
                selection.exhausted = False
            break
    return selection
