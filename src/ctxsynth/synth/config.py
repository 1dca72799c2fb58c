"""Typed configuration of the synthesize stage: options every task shares, then each task's own.

The YAML stays flat (`synth.chunk_words`, `synth.documents`, ...), but every task-specific option
is declared for its task in TASK_OPTIONS: setting an option of another task (e.g. `chunk_words`
with the context task) is an error instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ctxsynth.errors import ConfigError

# the options only some tasks read; every other field is shared by all tasks
TASK_OPTIONS: dict[str, tuple[str, ...]] = {
    "context": ("target_words", "genre", "prefill"),
    "multidoc": ("target_words", "genre", "documents", "evidence_recall", "require_split"),
    "instruction": ("chunk_words", "corpus"),
}


@dataclass
class SynthConfig:
    task: str = "context"  # synthesis task (registry name): context | instruction | multidoc
    target_words: int = 2000  # the paper's N (multidoc: words of all documents together)
    genre: str = "auto"  # auto = by seed task (synth/prompts/genres.yaml), or a genre name
    prompt_file: str | None = None  # your own prompt file ([system]/[user] sections)
    max_attempts: int = 3  # generations per seed before it is rejected
    # context task: start the model's reply with the "Context:" label (an assistant-turn prefill the
    # model continues), so a reply cannot miss the label; backends with `prefill` only (transformers)
    prefill: bool = False
    # instruction synthesis (PAPER.md section 3)
    chunk_words: int = 3000  # a contiguous chunk of about this many words is shown to the LLM
    corpus: str | None = None  # None = each seed's own context; "essays" | "wiki" | a .txt/.jsonl file or folder
    # multi-document synthesis
    documents: int = 0  # documents per seed; 0 = one per supporting-fact title, clamped to 2..4
    evidence_recall: float = 0.5  # share of an evidence part's content words its document must contain
    require_split: bool = True  # reject when one document alone carries every evidence part

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.target_words < 1 or self.chunk_words < 50:
            raise ValueError("target_words must be >= 1 and chunk_words >= 50")
        if self.documents != 0 and not 2 <= self.documents <= 4:
            raise ValueError(f"documents must be 0 (auto) or 2..4, got {self.documents}")
        if not 0.0 < self.evidence_recall <= 1.0:
            raise ValueError("evidence_recall must be in (0, 1]")
        self._check_task_options()

    def _check_task_options(self) -> None:
        """A task-specific option changed from its default must belong to the configured task."""
        if self.task not in TASK_OPTIONS:
            return  # an unknown task name is reported by the task registry, with "did you mean"
        specific = {name for names in TASK_OPTIONS.values() for name in names}
        for f in fields(self):
            if f.name in specific and f.name not in TASK_OPTIONS[self.task] and getattr(self, f.name) != f.default:
                owners = [t for t, names in TASK_OPTIONS.items() if f.name in names]
                raise ConfigError(f"synth.{f.name} is an option of the {' and '.join(owners)} task(s); "
                                  f"synth.task={self.task!r} does not read it: remove it or change synth.task")
