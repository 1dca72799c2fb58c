"""`FiltersConfig`: typed options of every filter, one nested section each with an `enabled` flag.

The run config nests it under `filters:`; the generic loader in ctxsynth.config turns YAML into
these dataclasses and rejects unknown keys. `validate()` raises ValueError naming the option.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ctxsynth.llm.base import SamplingParams
from ctxsynth.llm.spec import ModelSpec


@dataclass
class FilterLLM(ModelSpec):
    """The model a filter asks (closed-book probe, judge): a ModelSpec plus its sampling fields."""

    max_tokens: int = 32
    temperature: float = 0.0

    def params(self, seed: int | None = None) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=1.0, max_tokens=self.max_tokens, seed=seed)


@dataclass
class WellFormedConfig:
    """Ill-posed seeds: unanswerable answers, trivially short instructions, answers copied from them."""

    enabled: bool = True
    min_instruction_words: int = 3
    unanswerable_phrases: list[str] = field(default_factory=lambda: [
        "unanswerable", "no answer", "not answerable", "unknown", "n/a", "none", "cannot be determined",
        "cannot be answered", "not mentioned", "not given", "insufficient information", "not enough information",
    ])
    answer_in_instruction: bool = True  # drop answers that are the instruction's own words
    allow_choice_questions: bool = True  # "Which is older, A or B?" -> "A" is kept
    max_answer_words: int | None = None  # drop a seed with a reference answer longer than this (normalised words)


@dataclass
class ClosedBookConfig:
    """Ask the instruction with no context; a matching answer means the pair tests parametric knowledge."""

    enabled: bool = True
    llm: FilterLLM = field(default_factory=FilterLLM)
    f1_threshold: float = 0.8  # token F1 at or above this is a match
    contains_max_extra_words: int = 4  # "answer inside the prediction" counts with at most this many extra words
    skip_yes_no: bool = True  # a yes/no guess is right half the time: the probe says nothing there
    skip_given_choice: bool = True  # "Who is older, A or B?": picking one of the named options is a guess too
    llm_judge: bool = False  # also ask the model whether prediction and reference agree
    prompt_file: str | None = None


@dataclass
class RelianceConfig:
    """Mean answer log-prob with (context + instruction) minus with the instruction alone."""

    enabled: bool = True
    model: str = "smollm2-135m-instruct"  # any local causal LM folder, or an embedded alias
    threshold: float | None = None  # drop records scoring below it ("low_context_reliance"); None = score only
    question: bool = False  # also the question probe, log p(question | context) - log p(question): 2 more passes
    question_threshold: float | None = None  # drop records whose probe is below it ("low_question_reliance")
    token_budget: int = 8192
    max_context_tokens: int = 2048
    device: str = "cpu"
    dtype: str = "auto"


@dataclass
class JudgeConfig:
    """An LLM judges whether the context supports the answer and whether it leaks the instruction."""

    enabled: bool = False
    llm: FilterLLM = field(default_factory=lambda: FilterLLM(max_tokens=24))
    drop_unsupported: bool = True
    drop_leak: bool = True
    on_unparsed: str = "keep"  # "keep" | "drop" (reason "judge_unparsed")
    prompt_file: str | None = None


@dataclass
class DedupConfig:
    """Exact and MinHash near-duplicates; the first record in input order is kept."""

    enabled: bool = True
    seeds: bool = True  # instruction + answer
    contexts: bool = False  # SQuAD asks ~5 questions per paragraph: on, it keeps one per paragraph
    threshold: float = 0.85  # estimated Jaccard similarity for a near duplicate
    num_perm: int = 128
    shingle_chars: int = 5  # seeds: character n-grams (short texts)
    shingle_words: int = 5  # contexts: word n-grams


@dataclass
class DecontamConfig:
    """N-gram overlap with evaluation files (LongBench JSONL or ctxsynth EvalItem JSONL)."""

    enabled: bool = True
    eval_files: list[str] = field(default_factory=list)  # no files: the filter keeps everything
    n: int = 13
    short_n: int = 8  # texts shorter than n words are checked with short_n-grams (0: skip them)
    min_hits: int = 1  # n-grams shared with one eval item before a record counts as contaminated
    fields: list[str] = field(default_factory=lambda: ["instruction", "context"])


@dataclass
class FiltersConfig:
    wellformed: WellFormedConfig = field(default_factory=WellFormedConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    closed_book: ClosedBookConfig = field(default_factory=ClosedBookConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    reliance: RelianceConfig = field(default_factory=RelianceConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        most = self.wellformed.max_answer_words
        if most is not None and (isinstance(most, bool) or not isinstance(most, int) or most < 1):
            raise ValueError(f"filters.wellformed.max_answer_words must be a whole number >= 1, or null for no "
                             f"limit, not {most!r}")
        if not 0.0 < self.dedup.threshold <= 1.0:
            raise ValueError(f"filters.dedup.threshold must be in (0, 1], not {self.dedup.threshold}")
        if self.decontam.n < 1 or not 0 <= self.decontam.short_n <= self.decontam.n:
            raise ValueError("filters.decontam: need n >= 1 and 0 <= short_n <= n")
        unknown = set(self.decontam.fields) - {"instruction", "answer", "context"}
        if unknown:
            raise ValueError(f"filters.decontam.fields: unknown {sorted(unknown)}; known: instruction, answer, context")
        if self.judge.on_unparsed not in ("keep", "drop"):
            raise ValueError(f"filters.judge.on_unparsed must be keep or drop, not {self.judge.on_unparsed!r}")
        if not 0.0 < self.closed_book.f1_threshold <= 1.0:
            raise ValueError("filters.closed_book.f1_threshold must be in (0, 1]")
