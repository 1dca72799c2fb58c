"""Needles, questions and answers of the four NIAH variants, with disjoint train/test needle spaces.

A needle is "One of the special magic <kind> for <key> is: <value>." Keys and values are words
("amber-lantern"), 7-digit numbers or UUIDs. Every candidate string belongs to exactly one split,
decided by one bit of its SHA-256 digest, and a draw for a split rejects candidates of the other:
training needles can never appear in a test set, whatever the seeds, and no list must be shared.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass

from ctxsynth.errors import ConfigError
from ctxsynth.niah.config import NiahConfig
from ctxsynth.niah.words import ADJECTIVES, NOUNS

SPLITS = ("train", "test")
_KIND = {"words": ("word", "words"), "numbers": ("number", "numbers"), "uuids": ("UUID", "UUIDs")}
_MAX_DRAWS = 10_000


def needle_split(text: str) -> str:
    """The split ("train" or "test") that owns a key or value string, by a hash bit."""
    digest = hashlib.sha256(b"ctxsynth-niah\x1f" + text.encode("utf-8")).digest()
    return SPLITS[digest[0] & 1]


def _candidate(rng: random.Random, fmt: str) -> str:
    if fmt == "numbers":
        return str(rng.randint(1_000_000, 9_999_999))
    if fmt == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"


def draw(rng: random.Random, fmt: str, split: str, taken: set[str], source_text: str = "") -> str:
    """A fresh string of format `fmt` owned by `split`, not in `taken` and absent from `source_text`."""
    for _ in range(_MAX_DRAWS):
        text = _candidate(rng, fmt)
        if needle_split(text) == split and text not in taken and text not in source_text:
            taken.add(text)
            return text
    raise ConfigError(f"could not draw a fresh {fmt} needle for split {split!r}; the space is exhausted")


@dataclass
class Needle:
    key: str
    value: str
    target: bool  # its value belongs to the answer
    depth: float  # requested position in the haystack, 0..1
    text: str = ""


@dataclass
class NeedlePlan:
    """What one sample hides and asks, before any haystack is chosen."""

    variant: str
    needles: list[Needle]
    answers: list[str]  # every expected value, in the order the answer lists them
    preamble: str
    question: str
    answer_text: str

    @property
    def gold(self) -> Needle:
        return next(n for n in self.needles if n.target)


def _pairs(config: NiahConfig, variant: str, rng: random.Random, split: str,
           source_text: str) -> list[tuple[str, str, bool]]:
    """(key, value, is_target) for the variant, then the optional distractor needles."""
    keys: set[str] = set()
    values: set[str] = set()

    def key() -> str:
        return draw(rng, config.key_format, split, keys, source_text)

    def value() -> str:
        return draw(rng, config.value_format, split, values, source_text)

    if variant == "multi_value":
        asked = key()
        pairs = [(asked, value(), True) for _ in range(config.num_values)]
    elif variant == "multi_query":
        pairs = [(key(), value(), True) for _ in range(config.num_queries)]
    else:
        n_keys = config.num_keys if variant == "multi_key" else 1
        pairs = [(key(), value(), i == 0) for i in range(n_keys)]
    pairs += [(key(), value(), False) for _ in range(config.distractor_needles)]
    return pairs


def make_plan(config: NiahConfig, variant: str, rng: random.Random, split: str, gold_depth: float,
              source_text: str = "") -> NeedlePlan:
    """Draw the needles of one sample; the first target goes to `gold_depth`, the rest anywhere."""
    singular, plural = _KIND[config.value_format]
    pairs = _pairs(config, variant, rng, split, source_text)
    needles = [
        Needle(k, v, target, gold_depth if i == 0 else rng.random(),
               f"One of the special magic {plural} for {k} is: {v}.")
        for i, (k, v, target) in enumerate(pairs)
    ]
    targets = [n for n in needles if n.target]
    if variant == "multi_value":
        key = targets[0].key
        ordered = sorted(targets, key=lambda n: n.depth)  # listed in reading order
        question = f"What are all the special magic {plural} for {key} mentioned in the text above? List every one."
        answer_text = f"The special magic {plural} for {key} are: {', '.join(n.value for n in ordered)}."
    elif variant == "multi_query":
        ordered = list(targets)
        rng.shuffle(ordered)
        names = ", ".join(n.key for n in ordered[:-1]) + f" and {ordered[-1].key}" if len(ordered) > 1 \
            else ordered[0].key
        question = f"What are the special magic {plural} for {names} mentioned in the text above? Give each one."
        answer_text = f"The special magic {plural} are: " + "; ".join(f"{n.key}: {n.value}" for n in ordered) + "."
    else:
        ordered = targets
        question = f"What is the special magic {singular} for {targets[0].key} mentioned in the text above?"
        answer_text = f"The special magic {singular} for {targets[0].key} is: {targets[0].value}."
    preamble = (f"The text below hides some special magic {plural}. Memorize them: you will be asked about "
                "them afterwards.")
    return NeedlePlan(variant, needles, [n.value for n in ordered], preamble, question, answer_text)
