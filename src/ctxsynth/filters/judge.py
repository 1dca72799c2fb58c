"""Judge check: an LLM (any backend) says whether a context supports the answer and whether it
copies the instruction word for word.

The reply format is strict (two "KEY: yes|no" lines) but the parser is forgiving about what small
or chatty models do around it: case, markdown emphasis, "Yes."/"No,", extra prose, keys in another
order, JSON-like quoting. A reply that names neither verdict is "unparsed" and, by default, kept.
Reasons: "judge_unsupported", "judge_leak", "judge_unparsed" (only with on_unparsed="drop").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ctxsynth.filters.config import FiltersConfig, JudgeConfig
from ctxsynth.filters.registry import Filter, FilterContext
from ctxsynth.filters.verdict import Verdict
from ctxsynth.llm.base import Backend, ChatRequest
from ctxsynth.llm.failures import raise_if_unanswered
from ctxsynth.records import Seed
from ctxsynth.rng import derive_seed
from ctxsynth.synth.tasks import PromptTemplate

PROMPTS = Path(__file__).parent / "prompts"
_KEYS = {"supported": r"SUPPORT(?:ED|S)?", "leak": r"LEAK(?:S|ED)?(?:[_ ]QUESTION)?"}


@dataclass(frozen=True)
class Judgement:
    supported: bool | None  # None: the reply did not say
    leak: bool | None
    raw: str


def _flag(text: str, key: str) -> bool | None:
    pattern = rf"[\"'*_ ]*{_KEYS[key]}[\"'*_ ]*\s*[:=\-]\s*[\"'*_ ]*(yes|no|true|false)\b"
    found = re.search(pattern, text, re.IGNORECASE)
    return None if found is None else found.group(1).lower() in ("yes", "true")


def parse_judgement(text: str) -> Judgement:
    """Both verdicts from a reply; each is None when its line is missing or unreadable."""
    return Judgement(_flag(text, "supported"), _flag(text, "leak"), text)


@dataclass(frozen=True)
class JudgeItem:
    id: str
    context: str
    instruction: str
    answer: str


class JudgeFilter:
    name = "judge"
    global_pass = False  # judges each record alone

    def __init__(self, config: JudgeConfig, backend: Backend, run_seed: int = 0) -> None:
        self.config = config
        self.backend = backend
        self.run_seed = run_seed
        self.prompt = PromptTemplate.from_file(Path(config.prompt_file or PROMPTS / "judge.txt"))

    def check(self, seeds: Sequence[Seed]) -> list[Verdict]:
        """Seeds with their human context are judged; seeds without one are kept unjudged."""
        return self.check_items([JudgeItem(s.id, s.context, s.instruction, s.answers[0]) if s.context else None
                                 for s in seeds])

    def check_items(self, items: Sequence[JudgeItem | None]) -> list[Verdict]:
        """One verdict per item; None items (no context to judge) are kept unjudged."""
        asked = [i for i, it in enumerate(items) if it is not None]
        requests = [self._request(items[i]) for i in asked]  # type: ignore[arg-type]
        verdicts = [Verdict.kept("no context to judge", judged=False) for _ in items]
        results = self.backend.generate(requests) if requests else []
        raise_if_unanswered(results, self.backend, "the filter stage")
        for i, result in zip(asked, results, strict=True):
            if not result.answered:
                verdicts[i] = Verdict.kept(f"judge request failed: {result.error}", judged=False)
                continue
            verdicts[i] = self._verdict(parse_judgement(result.text or ""))
        return verdicts

    def _request(self, item: JudgeItem) -> ChatRequest:
        messages = self.prompt.render(context=item.context, instruction=item.instruction, answer=item.answer)
        return ChatRequest(messages, self.config.llm.params(derive_seed(self.run_seed, "judge", item.id)), id=item.id)

    def _verdict(self, j: Judgement) -> Verdict:
        scores = {"judged": True, "supported": j.supported, "leak": j.leak, "raw": j.raw[:500]}
        if j.supported is None and j.leak is None:
            if self.config.on_unparsed == "drop":
                return Verdict.drop("judge_unparsed", "judge reply names neither verdict", **scores)
            return Verdict.kept("judge reply unparsed", **scores)
        if self.config.drop_unsupported and j.supported is False:
            return Verdict.drop("judge_unsupported", "judge: the context does not support the answer", **scores)
        if self.config.drop_leak and j.leak is True:
            return Verdict.drop("judge_leak", "judge: the context contains the instruction verbatim", **scores)
        return Verdict.kept("", **scores)


def from_config(config: FiltersConfig, context: FilterContext) -> list[Filter]:
    if not config.judge.enabled:
        return []
    return [JudgeFilter(config.judge, context.chat(config.judge.llm), context.run_seed)]
