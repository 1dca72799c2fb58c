"""Checks that a generated context is usable: parsed, not a refusal, complete, of the right length,
not degenerate, and supporting the seed's answer.

Answer support is checked by string where a string can tell: an accepted answer found in the
context, a close token-F1 window, or the content-word recall of a long answer. A string cannot tell
for non-extractive answers ("yes", "no", "unanswerable", ... and short answers that occur nowhere as
a span): "no" occurs in most texts and "yes" in few, whatever they say. With `non_extractive:
judge` (the default) such answers get `supported: None` and `judge_reason`, and the synthesize stage
asks an LLM judge (ctxsynth.verify.judge) instead; `non_extractive: string` keeps the string verdict.

`verify_context` runs the checks in a fixed order and stops at the first failure, whose name is the
rejection reason written to rejected/. All measured values are kept in the verdict dictionary so a
reader can see how close a failure was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ctxsynth.errors import ConfigError
from ctxsynth.eval.metrics import contains_normalized, normalize_answer, token_f1

# rejection reasons, in the order they are checked
REASONS = (
    "request_failed",
    "truncated",
    "parse_failure",
    "refusal",
    "too_short",
    "too_long",
    "repetition",
    "answer_not_supported",
)

_REFUSAL = re.compile(
    r"\b(I(?:'m| am) (?:sorry|unable|not able)|I can(?:no|')t (?:help|assist|provide|write|create|comply)"
    r"|as an AI(?: language model)?|I apologi[sz]e|I do not have (?:access|enough information)"
    r"|(?:here is|here's|below is) (?:the|a|an) (?:missing )?(?:context|document|background)"
    r"|this (?:context|document) (?:provides|explains|leads to)|in this (?:context|document), I)",
    re.IGNORECASE,
)


@dataclass
class VerifyConfig:
    min_words_ratio: float = 0.2  # too short below ratio x target words
    max_words_ratio: float = 2.0  # too long above ratio x target words
    min_words: int = 30  # absolute floor, whatever the target
    repetition_ngram: int = 4
    max_repeated_fraction: float = 0.35  # share of word n-grams that are repeats of an earlier one
    short_answer_f1: float = 0.8  # best token-F1 of a context window against the answer (fallback)
    long_answer_words: int = 20  # answers longer than this are "long" (summaries)
    long_answer_recall: float = 0.5  # share of the long answer's content words found in the context
    checks: list[str] | None = None  # None = all of REASONS; request_failed/truncated/parse always run
    non_extractive: str = "judge"  # "judge": non-extractive answers are judged by the LLM | "string"
    non_extractive_answers: list[str] = field(default_factory=lambda: [
        "yes", "no", "true", "false", "unanswerable", "not answerable", "no answer", "unknown", "none",
        "cannot be determined", "cannot be answered", "insufficient information", "not enough information",
        "not mentioned", "not given", "n/a",
    ])  # answers (normalised) that no string check can support: always judged
    judge_max_tokens: int = 16  # the judge replies "SUPPORTED: yes|no"
    judge_prompt_file: str | None = None  # None = verify/prompts/support_judge.txt

    def __post_init__(self) -> None:
        if self.non_extractive not in ("judge", "string"):
            raise ConfigError(f"verify.non_extractive must be 'judge' or 'string', not {self.non_extractive!r}")
        unknown = set(self.checks or []) - set(REASONS)
        if unknown:
            raise ConfigError(f"unknown verification checks {sorted(unknown)}; known: {', '.join(REASONS)}")


def _repeated_fraction(words: list[str], n: int) -> float:
    total = max(0, len(words) - n + 1)
    if not total:
        return 0.0
    # the repeats (sum of count - 1 over distinct n-grams) are the n-grams minus the distinct ones
    distinct = set(zip(*(words[i : i + total] for i in range(n))))
    return (total - len(distinct)) / total


def _window_f1(context_tokens: list[str], answer_tokens: list[str]) -> float:
    """Best token-F1 between the answer and any context window of the answer's length (+-50%)."""
    n = len(answer_tokens)
    if n == 0 or not context_tokens:
        return 0.0
    best = 0.0
    for size in {max(1, n // 2), n, n + max(1, n // 2)}:
        for i in range(0, max(1, len(context_tokens) - size + 1)):
            best = max(best, token_f1(context_tokens[i : i + size], answer_tokens))
            if best == 1.0:
                return best
    return best


def non_extractive_kind(answers: list[str], config: VerifyConfig) -> str | None:
    """"phrase" when an accepted answer is one of `non_extractive_answers` (normalised), else None."""
    phrases = {normalize_answer(p) for p in config.non_extractive_answers}
    return "phrase" if any(normalize_answer(a) in phrases for a in answers) else None


def answer_support(context: str, answers: list[str], config: VerifyConfig,
                   judge_reason: str = "answer_not_supported") -> dict[str, Any]:
    """How well the context supports any accepted answer: alias match, window F1, or content recall.

    With `non_extractive: judge`, a yes/no/unanswerable-like answer, or a short answer that the
    string checks do not find, gets `supported: None`, `method: "judge"`, the string verdict under
    `string` and `judge_reason` (the reason to give when the judge says no): the stage decides."""
    string = string_support(context, answers, config)
    if config.non_extractive != "judge" or not answers:
        return string
    kind = non_extractive_kind(answers, config)
    if kind is None and (string["supported"] or string["method"] == "long_recall"):
        return string
    return {"supported": None, "method": "judge", "non_extractive": kind or "not_a_span",
            "string": string, "judge_reason": judge_reason}


def string_support(context: str, answers: list[str], config: VerifyConfig) -> dict[str, Any]:
    """The string verdict alone (no judge): alias match, window F1, or content recall."""
    if any(contains_normalized(context, a) for a in answers):
        return {"supported": True, "method": "exact_alias", "score": 1.0}
    ctx_tokens = normalize_answer(context).split()
    best: dict[str, Any] = {"supported": False, "method": "none", "score": 0.0}
    for answer in answers:
        ans_tokens = normalize_answer(answer).split()
        if len(ans_tokens) > config.long_answer_words:
            vocab = set(ctx_tokens)
            content = [t for t in ans_tokens if len(t) > 3] or ans_tokens
            score = sum(t in vocab for t in content) / len(content)
            cand = {"supported": score >= config.long_answer_recall, "method": "long_recall", "score": round(score, 4)}
        else:
            score = _window_f1(ctx_tokens, ans_tokens)
            cand = {"supported": score >= config.short_answer_f1, "method": "window_f1", "score": round(score, 4)}
        if cand["score"] >= best["score"]:
            best = cand
    return best


def verify_context(
    context: str | None, finish_reason: str | None, answers: list[str], target_words: int,
    config: VerifyConfig, error: str | None = None, parse_error: str | None = None,
) -> tuple[str | None, dict[str, Any]]:
    """Return (first failed reason or None, verdicts). `context` is the parsed document."""
    enabled = set(config.checks or REASONS) | {"request_failed", "truncated", "parse_failure"}
    verdicts: dict[str, Any] = {}
    if error is not None:
        return "request_failed", {"error": error}
    verdicts["finish_reason"] = finish_reason
    if finish_reason == "length":
        return "truncated", verdicts
    if parse_error is not None or context is None:
        verdicts["parse_error"] = parse_error
        return "parse_failure", verdicts
    words = context.split()
    verdicts["words"] = len(words)
    head = " ".join(words[:60]) + " " + " ".join(words[-40:])
    refusal = _REFUSAL.search(head)
    verdicts["refusal_match"] = refusal.group(0) if refusal else None
    if "refusal" in enabled and refusal:
        return "refusal", verdicts
    low, high = max(config.min_words, int(config.min_words_ratio * target_words)), int(config.max_words_ratio * target_words)
    verdicts["words_bounds"] = [low, high]
    if "too_short" in enabled and len(words) < low:
        return "too_short", verdicts
    if "too_long" in enabled and len(words) > high:
        return "too_long", verdicts
    rep = _repeated_fraction([w.lower() for w in words], config.repetition_ngram)
    verdicts["repeated_fraction"] = round(rep, 4)
    if "repetition" in enabled and rep > config.max_repeated_fraction:
        return "repetition", verdicts
    if "answer_not_supported" not in enabled:
        verdicts["support"] = string_support(context, answers, config)
        return None, verdicts
    support = answer_support(context, answers, config)
    verdicts["support"] = support
    if support["supported"] is False:
        return "answer_not_supported", verdicts
    return None, verdicts
