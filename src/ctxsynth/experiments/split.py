"""Data roles of an experiment and the check that they do not leak into each other.

An experiment's records fall into roles: training roles (general rows, seeds, writer triples,
filler rows) and test roles (evaluation items). Each record is reduced to a `Unit`: the texts a
model sees from it (its paragraphs, normalised), its questions, the HotpotQA paragraph titles it
shows and the SQuAD article it comes from. `find_overlaps` lists every key two roles share:

- any two roles: a paragraph (normalised text), a question (normalised text), a HotpotQA title;
- a test role against a training role, in addition: a SQuAD article title.

Training roles may share an article (different paragraphs of one Wikipedia page); a test item may
not share even that with training. `check_split` raises `LeakageError` when anything is shared.
The first Table 3 leaked because general rows were sampled from every SQuAD seed-partition
question, so 136 of 150 SQuAD seed paragraphs were verbatim in them: exactly what this finds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ctxsynth.errors import InputError
from ctxsynth.records import Seed

_PUNCT = re.compile(r"[^\w\s]")
KINDS = ("paragraph", "question", "title", "article")


class LeakageError(InputError):
    """Two roles of an experiment share a paragraph, question, title or (test vs train) article."""


def normalize(text: str) -> str:
    """Case-, accent-form-, punctuation- and whitespace-insensitive key of a text."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_PUNCT.sub(" ", text).split())


@dataclass(frozen=True)
class Unit:
    """What one record exposes to a model; keys are normalised when compared."""

    id: str
    paragraphs: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()  # HotpotQA paragraph titles (a title names one Wikipedia paragraph there)
    articles: tuple[str, ...] = ()  # SQuAD article titles

    def keys(self, kind: str) -> set[str]:
        values = {"paragraph": self.paragraphs, "question": self.questions, "title": self.titles,
                  "article": self.articles}[kind]
        return {k for k in (normalize(v) for v in values) if k}


@dataclass(frozen=True)
class Overlap:
    kind: str
    roles: tuple[str, str]
    key: str
    ids: tuple[str, str]  # one record of each role holding the key

    def describe(self) -> str:
        return f"{self.kind} shared by {self.roles[0]} {self.ids[0]} and {self.roles[1]} {self.ids[1]}: {self.key[:80]!r}"


@dataclass
class SplitReport:
    overlaps: list[Overlap] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # role -> units

    def by_kind(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for o in self.overlaps:
            out[o.kind] += 1
        return out


def _index(units: Iterable[Unit], kind: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for unit in units:
        for key in unit.keys(kind):
            index.setdefault(key, unit.id)
    return index


def find_overlaps(roles: Mapping[str, Iterable[Unit]], test_roles: Iterable[str] = ()) -> SplitReport:
    """Every key shared by two different roles (see the module docstring); test roles are not
    compared with each other for articles (several test sets may use one held-out article)."""
    tests = set(test_roles)
    unknown = tests - set(roles)
    if unknown:
        raise InputError(f"test roles {sorted(unknown)} are not among the roles {sorted(roles)}")
    materialised = {name: list(units) for name, units in roles.items()}
    report = SplitReport(counts={name: len(units) for name, units in materialised.items()})
    names = list(materialised)
    indexes = {(name, kind): _index(materialised[name], kind) for name in names for kind in KINDS}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for kind in KINDS:
                if kind == "article" and not ((a in tests) ^ (b in tests)):
                    continue  # articles: only test vs training
                left, right = indexes[(a, kind)], indexes[(b, kind)]
                for key in sorted(left.keys() & right.keys()):
                    report.overlaps.append(Overlap(kind, (a, b), key, (left[key], right[key])))
    return report


def check_split(roles: Mapping[str, Iterable[Unit]], test_roles: Iterable[str] = ()) -> SplitReport:
    """`find_overlaps`, raising LeakageError with counts and examples when any key is shared."""
    report = find_overlaps(roles, test_roles)
    if report.overlaps:
        kinds = ", ".join(f"{n} {k}" for k, n in report.by_kind().items() if n)
        examples = "; ".join(o.describe() for o in report.overlaps[:3])
        raise LeakageError(f"the roles overlap: {kinds} shared keys (e.g. {examples})")
    return report


def hotpotqa_paragraphs(meta: Mapping[str, Any], titles: Iterable[str]) -> list[tuple[str, str]]:
    """(title, text) of the named paragraphs of a HotpotQA seed or record (meta["paragraphs"])."""
    wanted = list(dict.fromkeys(titles))
    found = {p["title"]: "".join(p["sentences"]).strip() for p in meta.get("paragraphs", [])}
    missing = [t for t in wanted if t not in found]
    if missing:
        raise InputError(f"HotpotQA paragraphs {missing} are not in the record's paragraphs")
    return [(t, found[t]) for t in wanted]


def unit_from_seed(seed: Seed, *, all_paragraphs: bool = False) -> Unit:
    """The Unit of a built-in SQuAD or HotpotQA seed (ctxsynth.seeds.builtin): its question, its
    paragraph(s) and article or titles. HotpotQA: the supporting paragraphs (what training shows),
    or all 10 with `all_paragraphs` (what a distractor-setting prompt shows)."""
    meta = seed.meta
    dataset = meta.get("dataset")
    if dataset == "squad_v2":
        return Unit(seed.id, paragraphs=(seed.context or "",), questions=(seed.instruction,),
                    articles=(str(meta["title"]),))
    if dataset == "hotpotqa":
        titles = [p["title"] for p in meta["paragraphs"]] if all_paragraphs else meta["supporting_titles"]
        pairs = hotpotqa_paragraphs(meta, titles)
        return Unit(seed.id, paragraphs=tuple(text for _, text in pairs), questions=(seed.instruction,),
                    titles=tuple(title for title, _ in pairs))
    raise InputError(f"seed {seed.id}: unit_from_seed knows the built-in squad and hotpotqa seeds, not {dataset!r}")
