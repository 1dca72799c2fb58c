"""Metric functions: pure, deterministic, LongBench-style answer normalisation.

Shared by verification (does a context support its answer) and evaluation (is a prediction right).
Scores are in [0, 1]; reports multiply by 100. `METRICS` maps the names used in
`EvalItem.metric` to one uniform signature, score(prediction, references, item meta), so an
evaluation task is data that names its metric.
"""

from __future__ import annotations

import difflib
import functools
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

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


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised reference."""
    pred = normalize_answer(prediction)
    return 1.0 if any(pred == normalize_answer(r) for r in references) else 0.0


def substring_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 when any reference occurs in the prediction (normalised, on word boundaries)."""
    return 1.0 if any(contains_normalized(prediction, r) for r in references) else 0.0


@functools.lru_cache(maxsize=2)
def _rouge_scorer(chinese: bool = False) -> Any:
    from rouge_score import rouge_scorer

    if chinese:  # its default tokenizer keeps only [a-z0-9]: Chinese text would score 0
        return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_ZhTokenizer())
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, reference: str, chinese: bool = False) -> float:
    """ROUGE-L F-measure (longest common subsequence of lower-cased alphanumeric tokens, no
    stemming; jieba words with `chinese`) from the `rouge-score` package. LongBench used the `rouge`
    package's summary-level variant; the two agree on single-sentence texts and differ slightly on
    multi-sentence ones."""
    if not prediction.strip() or not reference.strip():
        return 0.0
    return float(_rouge_scorer(chinese).score(reference, prediction)["rougeL"].fmeasure)


# Chinese (LongBench's multifieldqa_zh, dureader, vcsum, passage_retrieval_zh): words from jieba,
# each lower-cased with ASCII and CJK punctuation and spaces removed; empty words dropped.
_ZH_PUNCT = set(string.punctuation) | set(
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》《「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏·"
)


@functools.lru_cache(maxsize=1)
def _jieba() -> Any:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # it announces its dictionary load on stderr otherwise
    return jieba


def normalize_zh_answer(text: str) -> str:
    """Lower-case and drop punctuation (ASCII and CJK) and all whitespace (LongBench's Chinese rule)."""
    return "".join(ch for ch in text.lower() if ch not in _ZH_PUNCT and not ch.isspace())


def zh_words(text: str) -> list[str]:
    """jieba's words of `text` (precise mode), normalised, without the empty ones."""
    return [w for w in (normalize_zh_answer(w) for w in _jieba().cut(text, cut_all=False)) if w]


def qa_f1_zh(prediction: str, reference: str) -> float:
    """Token F1 over jieba words (LongBench's qa_f1_zh)."""
    return token_f1(zh_words(prediction), zh_words(reference))


class _ZhTokenizer:
    """rouge-score tokenizer interface over jieba words."""

    def tokenize(self, text: str) -> list[str]:
        return zh_words(text)


def rouge_l_zh(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure over jieba words (LongBench's rouge_zh segments with jieba the same way)."""
    return rouge_l(prediction, reference, chinese=True)


def classification_score(prediction: str, reference: str, classes: Sequence[str]) -> float:
    """LongBench-style label accuracy: the class names found in the prediction, minus any that are
    only fragments of the reference label; the reference earns 1/(number of labels named)."""
    named = [c for c in classes if c in prediction]
    named = [c for c in named if not (c in reference and c != reference)]
    return 1.0 / len(named) if reference in named else 0.0


_PARAGRAPH_REF = re.compile(r"Paragraph (\d+)")
_PARAGRAPH_REF_ZH = re.compile(r"段落(\d+)")
_NUMBER = re.compile(r"\d+")


def retrieval_score(prediction: str, reference: str, pattern: re.Pattern[str] = _PARAGRAPH_REF) -> float:
    """LongBench passage-retrieval accuracy: the share of numbers in the prediction that equal the
    reference paragraph number ("Paragraph 7" -> 7); 0 when the prediction names no number."""
    found = pattern.search(reference)
    target = found.group(1) if found else reference.strip()
    numbers = _NUMBER.findall(prediction)
    if not numbers:
        return 0.0
    return sum(1 for n in numbers if n == target) / len(numbers)


def count_score(prediction: str, reference: str) -> float:
    """LongBench passage-count accuracy: the share of numbers in the prediction equal to the count."""
    numbers = _NUMBER.findall(prediction)
    if not numbers:
        return 0.0
    return sum(1 for n in numbers if n == reference.strip()) / len(numbers)


def first_code_line(prediction: str) -> str:
    """The first line of a completion that looks like code (not a fence or a comment), or ""."""
    for line in prediction.lstrip("\n").split("\n"):
        if "`" not in line and "#" not in line and "//" not in line:
            return line
    return ""


def code_sim(prediction: str, reference: str) -> float:
    """LongBench code edit similarity: difflib's matching ratio between the first code line of the
    prediction and the reference line (the fuzzywuzzy ratio LongBench used, without rounding)."""
    return difflib.SequenceMatcher(None, first_code_line(prediction), reference).ratio()


def _best(fn: Callable[[str, str], float]) -> Callable[[str, Sequence[str], dict[str, Any]], float]:
    def score(prediction: str, references: Sequence[str], meta: dict[str, Any]) -> float:
        return max((fn(prediction, r) for r in references), default=0.0)

    return score


def _classification(prediction: str, references: Sequence[str], meta: dict[str, Any]) -> float:
    classes = meta.get("all_classes") or []
    return max((classification_score(prediction, r, classes) for r in references), default=0.0)


# metric name (EvalItem.metric) -> score(prediction, references, item meta) in [0, 1]
METRICS: dict[str, Callable[[str, Sequence[str], dict[str, Any]], float]] = {
    "qa_f1": _best(qa_f1),
    "rouge_l": _best(rouge_l),
    "classification": _classification,
    "retrieval": _best(retrieval_score),
    "qa_f1_zh": _best(qa_f1_zh),
    "rouge_l_zh": _best(rouge_l_zh),
    "retrieval_zh": _best(functools.partial(retrieval_score, pattern=_PARAGRAPH_REF_ZH)),
    "count": _best(count_score),
    "code_sim": _best(code_sim),
    "exact_match": lambda p, refs, meta: exact_match(p, refs),
    "substring": lambda p, refs, meta: substring_match(p, refs),
    "all_substring": lambda p, refs, meta: all_substring(p, refs),
}


def score(metric: str, prediction: str, references: Sequence[str], meta: dict[str, Any] | None = None) -> float:
    """Score one prediction with the named metric; unknown names fail with the list of known ones."""
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, METRICS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown metric {metric!r}.{hint} Known: {', '.join(sorted(METRICS))}")
    return float(METRICS[metric](prediction, references, meta or {}))
