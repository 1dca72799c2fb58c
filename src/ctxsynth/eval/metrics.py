"""Metric functions: pure, deterministic, LongBench's scoring rules.

The LongBench metrics (qa_f1, qa_f1_zh, rouge_l, rouge_l_zh, classification, retrieval,
retrieval_zh, count, code_sim) give the same number as LongBench's metrics.py on the same input:
they use the libraries it uses (`rouge`, jieba, fuzzywuzzy's ratio) and keep its quirks, each
named where it happens (docs/longbench.md lists them).

Shared by verification (does a context support its answer) and evaluation (is a prediction right).
Scores are in [0, 1]; reports multiply by 100. `METRICS` is the registry of the names used in
`EvalItem.metric`, each with one uniform signature, score(prediction, references, item meta), so an
evaluation task is data that names its metric; `check_metric` refuses an unknown name when a task
is loaded, before any model runs.
"""

from __future__ import annotations

import difflib
import functools
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ctxsynth.errors import ConfigError, RegistryError
from ctxsynth.registry import Registry

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_DROP_PUNCT = str.maketrans("", "", string.punctuation)  # the same deletion as a per-character filter, in C


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and English articles, collapse whitespace (SQuAD/LongBench)."""
    text = text.lower()
    text = text.translate(_DROP_PUNCT)
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


def rouge_l(prediction: str, reference: str) -> float:
    """LongBench's ROUGE-L: the F of the `rouge` package's summary-level ROUGE-L, as LongBench's
    metrics.py computes it. That package splits both texts into sentences on every ".", keeps case
    and punctuation, counts each hypothesis word once per reference sentence (union LCS), and
    raises on empty input and, through its recursive LCS back-trace, on long texts; LongBench
    turns every such exception into a score of 0 and so does this function."""
    from rouge import Rouge

    try:
        scores = Rouge().get_scores([prediction], [reference], avg=True)
    except Exception:  # LongBench: any failure (empty text, RecursionError on long texts) scores 0
        return 0.0
    return float(scores["rouge-l"]["f"])


# Chinese (LongBench's multifieldqa_zh, dureader, vcsum, passage_retrieval_zh): words from jieba,
# each lower-cased with ASCII and CJK punctuation and spaces removed; empty words dropped.
# LongBench's list leaves out the opening "《" and the middle dot "·": kept as in LongBench, so those
# characters stay part of a word.
_ZH_PUNCT = set(string.punctuation) | set(
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
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


def rouge_l_zh(prediction: str, reference: str) -> float:
    """LongBench's Chinese ROUGE-L: both texts cut into jieba words (precise mode, nothing
    normalised), joined with spaces, then scored by `rouge_l`."""
    jieba = _jieba()
    return rouge_l(" ".join(jieba.cut(prediction, cut_all=False)), " ".join(jieba.cut(reference, cut_all=False)))


def classification_score(prediction: str, reference: str, classes: Sequence[str]) -> float:
    """LongBench's label accuracy, quirk included: the class names found in the prediction, minus
    the ones that are fragments of the reference label, where the removal happens inside a loop over
    the same list (as in LongBench's metrics.py), so a fragment right after a removed one is skipped
    and survives. The reference earns 1/(number of names left) when it is among them.

    Example: classes ["a", "ab", "abc", "abcd"], reference "abcd", prediction "abcd": all four
    are found; the loop removes "a" then looks at index 1, now "abc" (skipping "ab"), removes it,
    and stops; ["ab", "abcd"] remain and the score is 1/2 (a clean removal would give 1)."""
    named = [c for c in classes if c in prediction]
    for name in named:  # noqa: B909 - mutating while iterating is the behaviour being reproduced
        if name in reference and name != reference:
            named.remove(name)
    return 1.0 / len(named) if reference in named else 0.0


_PARAGRAPH_REF = re.compile(r"Paragraph (\d+)")
_PARAGRAPH_REF_ZH = re.compile(r"段落(\d+)")
_NUMBER = re.compile(r"\d+")


def retrieval_score(prediction: str, reference: str, pattern: re.Pattern[str] = _PARAGRAPH_REF) -> float:
    """LongBench passage-retrieval accuracy: the share of numbers in the prediction that equal the
    reference paragraph number ("Paragraph 7" -> 7); 0 when the prediction names no number. A
    reference without a paragraph number stops LongBench's scorer (IndexError); here the whole
    reference is the target instead."""
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
    return sum(1 for n in numbers if n == reference) / len(numbers)


def first_code_line(prediction: str) -> str:
    """The first line of a completion that looks like code (not a fence or a comment), or ""."""
    for line in prediction.lstrip("\n").split("\n"):
        if "`" not in line and "#" not in line and "//" not in line:
            return line
    return ""


@functools.lru_cache(maxsize=1)
def _fuzz_ratio() -> Callable[[str, str], int]:
    """fuzzywuzzy's `fuzz.ratio` (LongBench's code similarity), pinned to its pure-Python matcher.

    fuzzywuzzy switches to python-Levenshtein's ratio when that package is importable, and the two
    disagree on many pairs ("ac a" vs "cca": 29 with difflib, 57 with Levenshtein). LongBench's
    requirements.txt installs fuzzywuzzy alone, so its scorer runs on difflib: this function keeps
    that behaviour whatever else is installed, with fuzzywuzzy's own None/equal/empty checks and its
    rounding to a whole percent (Python's round: 12.5 -> 12)."""
    import warnings

    with warnings.catch_warnings():  # "Using slow pure-python SequenceMatcher" when Levenshtein is absent
        warnings.simplefilter("ignore")
        from fuzzywuzzy import utils

    @utils.check_for_none
    @utils.check_for_equivalence
    @utils.check_empty_string
    def ratio(s1: str, s2: str) -> int:
        s1, s2 = utils.make_type_consistent(s1, s2)
        return int(utils.intr(100 * difflib.SequenceMatcher(None, s1, s2).ratio()))

    return ratio  # type: ignore[no-any-return]


def code_sim(prediction: str, reference: str) -> float:
    """LongBench code edit similarity: fuzzywuzzy's ratio (whole percent) between the first code
    line of the prediction and the reference line, divided by 100."""
    return _fuzz_ratio()(first_code_line(prediction), reference) / 100


def _best(fn: Callable[[str, str], float]) -> Callable[[str, Sequence[str], dict[str, Any]], float]:
    def score(prediction: str, references: Sequence[str], meta: dict[str, Any]) -> float:
        return max((fn(prediction, r) for r in references), default=0.0)

    return score


def _classification(prediction: str, references: Sequence[str], meta: dict[str, Any]) -> float:
    classes = meta.get("all_classes") or []
    return max((classification_score(prediction, r, classes) for r in references), default=0.0)


Metric = Callable[[str, Sequence[str], dict[str, Any]], float]

# metric name (EvalItem.metric) -> score(prediction, references, item meta) in [0, 1]
METRICS = Registry("metric")
for _name, _fn in (
    ("qa_f1", _best(qa_f1)),
    ("rouge_l", _best(rouge_l)),
    ("classification", _classification),
    ("retrieval", _best(retrieval_score)),
    ("qa_f1_zh", _best(qa_f1_zh)),
    ("rouge_l_zh", _best(rouge_l_zh)),
    ("retrieval_zh", _best(functools.partial(retrieval_score, pattern=_PARAGRAPH_REF_ZH))),
    ("count", _best(count_score)),
    ("code_sim", _best(code_sim)),
    ("exact_match", lambda p, refs, meta: exact_match(p, refs)),
    ("substring", lambda p, refs, meta: substring_match(p, refs)),
    ("all_substring", lambda p, refs, meta: all_substring(p, refs)),
    # RULER's per-sample metrics, from the installed package (ctxsynth.eval.ruler.score)
    ("ruler_string_match_all", lambda p, refs, meta: _ruler("string_match_all")(p, refs, meta)),
    ("ruler_string_match_part", lambda p, refs, meta: _ruler("string_match_part")(p, refs, meta)),
    # LongBench v2's judge: the extracted letter equals the answer (ctxsynth.eval.longbench_v2)
    ("longbench_v2_choice", lambda p, refs, meta: _longbench_v2_choice(p, refs, meta)),
):
    METRICS.register(_name, _fn)


def check_metric(metric: str, where: str) -> None:
    """A config error (with a "did you mean") when `metric` is not a registered metric name."""
    if metric not in METRICS:
        try:
            METRICS.get(metric)
        except RegistryError as err:
            raise ConfigError(f"{where}: {err}") from None


def _longbench_v2_choice(prediction: str, references: Sequence[str], meta: dict[str, Any]) -> float:
    from ctxsynth.eval.longbench_v2 import choice_score

    return choice_score(prediction, references, meta)


def _ruler(name: str) -> Callable[[str, Sequence[str], dict[str, Any]], float]:
    from ctxsynth.eval.ruler import score as ruler_score

    return getattr(ruler_score, name)  # type: ignore[no-any-return]


def score(metric: str, prediction: str, references: Sequence[str], meta: dict[str, Any] | None = None) -> float:
    """Score one prediction with the named metric; an unknown name is a RegistryError (a KeyError)
    listing the known ones."""
    fn: Metric = METRICS.get(metric)
    return float(fn(prediction, references, meta or {}))
