"""Ill-posed seed checks: pairs no context can make well-posed, dropped before any model runs.

Reasons: "empty_answer", "unanswerable_answer" (the answer says there is none: SQuAD v2 style),
"instruction_too_short" (empty or a couple of words), "answer_in_instruction" (the answer is the
instruction's own words, so the instruction gives it away; choice questions such as
"Which is older, A or B?" are exempt by default, since naming the options is their form),
"answer_too_long" (only with `max_answer_words`: a reference answer has more words than that, after
normalisation (case, punctuation and articles dropped), so the seed is not a short-span question).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ctxsynth.eval.metrics import contains_normalized, normalize_answer
from ctxsynth.filters.config import FiltersConfig, WellFormedConfig
from ctxsynth.filters.registry import Filter, FilterContext
from ctxsynth.filters.verdict import Verdict
from ctxsynth.records import Seed

_CHOICE = re.compile(r"\b(or|between|whether|which of|who of)\b", re.IGNORECASE)
YES_NO = frozenset({"yes", "no"})


def is_choice_among_given(instruction: str, answers: Sequence[str]) -> bool:
    """A choice question whose options are spelled out ("Who is older, A or B?" -> "B"): a model can
    pick one without knowing anything, like yes/no."""
    return bool(_CHOICE.search(instruction)) and any(contains_normalized(instruction, a) for a in answers if a.strip())


def is_yes_no(answers: Sequence[str]) -> bool:
    return bool(answers) and all(normalize_answer(a) in YES_NO for a in answers)


class WellFormedFilter:
    name = "wellformed"
    global_pass = False  # judges each record alone

    def __init__(self, config: WellFormedConfig) -> None:
        self.config = config
        self._unanswerable = {normalize_answer(p) for p in config.unanswerable_phrases}

    def check(self, seeds: Sequence[Seed]) -> list[Verdict]:
        return [self.check_one(s) for s in seeds]

    def check_one(self, seed: Seed) -> Verdict:
        answers = [a for a in seed.answers if isinstance(a, str)]
        normalized = [normalize_answer(a) for a in answers]
        if not any(normalized):
            return Verdict.drop("empty_answer", "no non-empty answer")
        hit = next((a for a, n in zip(answers, normalized, strict=True) if n in self._unanswerable), None)
        if hit is not None:
            return Verdict.drop("unanswerable_answer", f"answer {hit!r} says there is no answer")
        words = len(normalize_answer(seed.instruction).split())
        if words < self.config.min_instruction_words:
            return Verdict.drop("instruction_too_short", f"{words} words < {self.config.min_instruction_words}",
                                instruction_words=words)
        if self.config.answer_in_instruction and not is_yes_no(answers):
            copied = [a for a in answers if contains_normalized(seed.instruction, a)]
            choice = self.config.allow_choice_questions and bool(_CHOICE.search(seed.instruction))
            if copied and len(copied) == len([n for n in normalized if n]) and not choice:
                return Verdict.drop("answer_in_instruction", f"answer {copied[0]!r} appears in the instruction")
        longest = max((len(n.split()) for n in normalized), default=0)
        most = self.config.max_answer_words
        if most is not None and longest > most:
            return Verdict.drop("answer_too_long", f"a reference answer has {longest} words > {most}",
                                answer_words=longest)
        return Verdict.kept(instruction_words=words)


def from_config(config: FiltersConfig, context: FilterContext) -> list[Filter]:
    return [WellFormedFilter(config.wellformed)] if config.wellformed.enabled else []
