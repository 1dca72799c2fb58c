"""Metric functions: pure, deterministic, LongBench-style answer normalisation.

Shared by verification (does a context support its answer) and evaluation (is a prediction right).
Scores are in [0, 1]; reports multiply by 100.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and English articles, collapse whitespace (SQuAD/LongBench)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction_tokens: Sequence[str], reference_tokens: Sequence[str]) -> float:
    common = Counter(prediction_tokens) & Counter(reference_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(prediction_tokens)
    recall = same / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def qa_f1(prediction: str, reference: str) -> float:
    """Token F1 between normalised prediction and reference."""
    return token_f1(normalize_answer(prediction).split(), normalize_answer(reference).split())


def best_qa_f1(prediction: str, references: Sequence[str]) -> float:
    return max((qa_f1(prediction, r) for r in references), default=0.0)


def contains_normalized(haystack: str, needle: str) -> bool:
    """True when the normalised needle occurs in the normalised haystack on word boundaries."""
    n = normalize_answer(needle)
    if not n:
        return False
    return f" {n} " in f" {normalize_answer(haystack)} "


def all_substring(prediction: str, references: Sequence[str]) -> float:
    """NIAH score: fraction of expected values that appear in the prediction (case-insensitive)."""
    if not references:
        return 0.0
    low = prediction.lower()
    return sum(1 for r in references if r.lower() in low) / len(references)
