"""Typed configuration of the assembly stage; the defaults reproduce the paper's setup.

Paper (PAPER.md section 2): 1 gold + 9 distractor contexts of the same task, the gold in a uniform
random slot, documents joined by blank lines, filled into the task's LongBench-style template. The
authors' scripts join documents with a blank line, so `separator="blank_line"` is the default here;
"none" means a single line break (no visual separator, no header).

Length has two modes: a document count (`target_tokens=None`, paper) or a token target measured in
the target tokenizer over the fully rendered chat (user + assistant turn, chat template applied).
A token target is one value, a list of buckets (one drawn per sample), or a uniform range
(`target_sampling="uniform"` with `target_tokens=[min, max]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Separator = Literal["none", "blank_line", "numbered"]
PositionMode = Literal["uniform", "fixed", "grid", "middle"]
VerifyMode = Literal["auto", "fast", "full"]

BUILTIN_STRATEGIES = ("same_task", "any_task", "embedding", "bm25")
# strategies that draw from an external corpus (wiki, essays or a path): at random, or ranked
CORPUS_PREFIXES = ("corpus:", "embedding:", "bm25:")


@dataclass
class AssembleConfig:
    """How verified synthetic contexts become long training samples."""

    tokenizer: str = "smollm2"  # spec for ctxsynth.tokenize.load_tokenizer
    # length: a document count (target_tokens None) or a token target
    n_documents: int = 10  # gold + distractors, used when target_tokens is None
    # document-count mode only: a cap on the whole sample (chat + answer) in tokens, e.g. the pack
    # length you train at. Distractors are dropped, last chosen first, until it fits; None = no cap
    max_total_tokens: int | None = None
    target_tokens: int | list[int] | None = None
    target_sampling: Literal["choice", "uniform"] = "choice"  # list: one bucket per sample, or [min, max]
    reserve_tokens: int = 0  # kept free below the target (e.g. an EOS the trainer appends)
    fill_tolerance: float = 0.02  # fill to within this fraction of the target
    trim_to_fill: bool = True  # cut one distractor at a sentence end to close the last gap
    # gold position
    position: PositionMode = "uniform"  # uniform slot (paper) | fixed depth | depth grid | middle-heavy
    depth: float = 0.5  # for position="fixed"
    grid_points: int = 11  # for position="grid": depths 0, 1/(n-1), ..., 1, one cell per sample
    middle_concentration: float = 4.0  # for position="middle": depth ~ Beta(c, c)
    # distractors: same_task | any_task | embedding | bm25 (hard negatives ranked in the synthetic pool)
    # | corpus:<c> (random) | embedding:<c> | bm25:<c> (ranked in corpus c: wiki, essays or a path)
    distractors: str = "same_task"
    # how the random strategies (same_task, any_task, corpus:<c>) order candidates: "shuffle" shuffles
    # every candidate position per sample (the default; its samples are the reference bytes, but it
    # costs O(pool) per sample, quadratic in the run); "sample" draws distinct positions one at a time
    # from a generator seeded per sample: O(candidates looked at), other (equally valid) samples
    random_draw: Literal["shuffle", "sample"] = "shuffle"
    corpus_chunk_words: int = 700  # external corpora are cut into documents of about this many words
    embedding_model: str | None = None  # sentence-transformers folder; None = bundled MiniLM
    # leak checks
    leak_check: bool = True  # skip distractors that contain a (normalised) answer
    leak_exempt: list[str] = field(default_factory=lambda: ["yes", "no", "unanswerable"])
    near_duplicate_threshold: float = 0.5  # estimated word 5-gram Jaccard with the gold; 1.0 disables
    # rendering
    separator: Separator = "blank_line"
    template: str = "auto"  # auto (by task) | built-in name | path to .txt/.yaml/.json template file
    # exact counting: fast = cached per-document counts + boundary windows; full = re-tokenize once
    verify: VerifyMode = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on impossible combinations, naming the field."""
        if self.n_documents < 1:
            raise ValueError("n_documents must be >= 1")
        if self.max_total_tokens is not None:
            if self.max_total_tokens <= 0:
                raise ValueError(f"max_total_tokens must be positive, got {self.max_total_tokens}")
            if self.target_tokens is not None:
                raise ValueError("max_total_tokens caps document-count mode; with target_tokens set, the "
                                 "target already bounds every sample: set one of the two")
        targets = self.targets()
        if any(t <= 0 for t in targets):
            raise ValueError(f"target_tokens must be positive, got {self.target_tokens!r}")
        if self.target_sampling == "uniform" and len(targets) != 2:
            raise ValueError("target_sampling='uniform' needs target_tokens=[min, max]")
        if self.target_sampling == "uniform" and targets[0] > targets[1]:
            raise ValueError(f"target_tokens range {targets} has min > max")
        if not 0.0 <= self.fill_tolerance < 1.0:
            raise ValueError("fill_tolerance must be in [0, 1)")
        if self.reserve_tokens < 0:
            raise ValueError("reserve_tokens must be >= 0")
        if not 0.0 <= self.depth <= 1.0:
            raise ValueError("depth must be in [0, 1]")
        if self.grid_points < 2:
            raise ValueError("grid_points must be >= 2")
        if self.middle_concentration <= 0:
            raise ValueError("middle_concentration must be > 0")
        if self.distractors not in BUILTIN_STRATEGIES and not self.distractors.startswith(CORPUS_PREFIXES):
            raise ValueError(
                f"unknown distractor strategy {self.distractors!r}; use one of {', '.join(BUILTIN_STRATEGIES)}, "
                "embedding:<corpus>, bm25:<corpus>, "
                "corpus:wiki, corpus:essays or corpus:<path>"
            )
        if self.random_draw not in ("shuffle", "sample"):
            raise ValueError(f"random_draw must be 'shuffle' or 'sample', got {self.random_draw!r}")
        if self.corpus_chunk_words < 20:
            raise ValueError("corpus_chunk_words must be >= 20")

    def targets(self) -> list[int]:
        """The configured token targets as a list (empty in document-count mode)."""
        if self.target_tokens is None:
            return []
        return [self.target_tokens] if isinstance(self.target_tokens, int) else list(self.target_tokens)
