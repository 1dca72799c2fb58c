"""Closed-book probe: ask the instruction with no context; if the model already knows the answer,
the pair tests parametric knowledge rather than use of a context, and is dropped
("answerable_closed_book").

A prediction matches when, after SQuAD/LongBench normalisation, it equals a reference, contains
one with at most a few extra words (a long ramble that happens to mention it is not knowledge), or reaches the
token-F1 threshold; optionally the same model is also asked whether the two answers agree.
Yes/no answers are not probed by default: a guess is right half the time. Failed requests keep the
record (the probe is evidence for dropping, not against keeping) and say so in the detail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxsynth.eval.metrics import best_qa_f1, contains_normalized, normalize_answer
from ctxsynth.filters.config import ClosedBookConfig, FiltersConfig
from ctxsynth.filters.registry import Filter, FilterContext
from ctxsynth.filters.verdict import Verdict
from ctxsynth.filters.wellformed import is_choice_among_given, is_yes_no
from ctxsynth.llm.base import Backend, ChatRequest
from ctxsynth.llm.failures import raise_if_unanswered
from ctxsynth.records import Seed
from ctxsynth.rng import derive_seed
from ctxsynth.synth.tasks import PromptTemplate

PROMPTS = Path(__file__).parent / "prompts"
_LABEL = re.compile(r"^\s*(?:\*\*)?(?:final\s+)?answer(?:\*\*)?\s*[:\-]\s*", re.IGNORECASE)
_MATCH = re.compile(r"\b(MATCH|DIFFERENT)\b", re.IGNORECASE)


def clean_prediction(text: str) -> str:
    """First non-empty line, without an 'Answer:' label, quotes or a trailing full stop."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line).strip().strip("\"'*` ").rstrip(".")
    return line.strip().strip("\"'*` ")


def match_scores(prediction: str, answers: Sequence[str], config: ClosedBookConfig) -> dict[str, Any]:
    """Normalised exact match, short containment and token F1 of one prediction."""
    pred = normalize_answer(prediction)
    exact = bool(pred) and any(pred == normalize_answer(a) for a in answers)
    extra = config.contains_max_extra_words
    contains = any(contains_normalized(prediction, a) and len(pred.split()) <= len(normalize_answer(a).split()) + extra
                   for a in answers)
    f1 = best_qa_f1(prediction, answers) if pred else 0.0
    return {"exact": exact, "contains": contains, "f1": round(f1, 4),
            "match": exact or contains or f1 >= config.f1_threshold}


class ClosedBookFilter:
    name = "closed_book"
    global_pass = False  # judges each record alone

    def __init__(self, config: ClosedBookConfig, backend: Backend, run_seed: int = 0) -> None:
        self.config = config
        self.backend = backend
        self.run_seed = run_seed
        self.prompt = PromptTemplate.from_file(Path(config.prompt_file or PROMPTS / "closed_book.txt"))
        self.match_prompt = PromptTemplate.from_file(PROMPTS / "answer_match.txt")

    def _guessable(self, seed: Seed) -> bool:
        """Answers a model can guess without knowledge: the probe would measure luck, not memory."""
        return ((self.config.skip_yes_no and is_yes_no(seed.answers))
                or (self.config.skip_given_choice and is_choice_among_given(seed.instruction, seed.answers)))

    def check(self, seeds: Sequence[Seed]) -> list[Verdict]:
        probed = [i for i, s in enumerate(seeds) if not self._guessable(s)]
        requests = [ChatRequest(self.prompt.render(instruction=seeds[i].instruction),
                                self.config.llm.params(derive_seed(self.run_seed, "closed_book", seeds[i].id)),
                                id=seeds[i].id) for i in probed]
        results = self.backend.generate(requests)
        raise_if_unanswered(results, self.backend, "the filter stage")
        verdicts = [Verdict.kept("yes/no or given-choice answer: not probed", probed=False) for _ in seeds]
        judged: list[tuple[int, str]] = []
        for i, result in zip(probed, results, strict=True):
            if not result.answered:
                verdicts[i] = Verdict.kept(f"probe request failed: {result.error}", probed=False)
                continue
            prediction = clean_prediction(result.text or "")
            scores = {"prediction": prediction, **match_scores(prediction, seeds[i].answers, self.config)}
            verdicts[i] = self._verdict(scores)
            if self.config.llm_judge and not scores["match"] and prediction:
                judged.append((i, prediction))
        for i, agrees in zip([j for j, _ in judged], self._judge(seeds, judged), strict=True):
            if agrees:
                scores = {**verdicts[i].scores, "llm_match": True, "match": True}
                verdicts[i] = self._verdict(scores)
        return verdicts

    def _verdict(self, scores: dict[str, Any]) -> Verdict:
        if scores["match"]:
            return Verdict.drop("answerable_closed_book", f"closed-book answer {scores['prediction']!r} matches",
                                probed=True, **scores)
        return Verdict.kept("", probed=True, **scores)

    def _judge(self, seeds: Sequence[Seed], judged: list[tuple[int, str]]) -> list[bool]:
        """Ask whether each (reference, prediction) pair agrees; anything but MATCH is 'no'."""
        requests = [ChatRequest(self.match_prompt.render(instruction=seeds[i].instruction,
                                                         reference=" / ".join(seeds[i].answers), prediction=p),
                                self.config.llm.params(derive_seed(self.run_seed, "closed_book_judge", seeds[i].id)),
                                id=seeds[i].id) for i, p in judged]
        out = []
        results = self.backend.generate(requests) if requests else []
        raise_if_unanswered(results, self.backend, "the filter stage")
        for result in results:
            found = _MATCH.search(result.text or "") if result.answered else None
            out.append(found is not None and found.group(1).upper() == "MATCH")
        return out


def from_config(config: FiltersConfig, context: FilterContext) -> list[Filter]:
    if not config.closed_book.enabled:
        return []
    return [ClosedBookFilter(config.closed_book, context.chat(config.closed_book.llm), context.run_seed)]
