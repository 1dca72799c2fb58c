"""Typed configuration of the synthesize stage, shared by every synthesis task.

The first block is what the paper's context synthesis needs; the rest are options of the two
baselines (instruction synthesis: chunk size and corpus; multi-document synthesis: document count
and how strictly the evidence must be split). Tasks read only the fields they use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SynthConfig:
    task: str = "context"  # synthesis task (registry name): context | instruction | multidoc
    target_words: int = 2000  # the paper's N (multidoc: words of all documents together)
    genre: str = "auto"  # auto = by seed task (synth/prompts/genres.yaml), or a genre name
    prompt_file: str | None = None  # your own prompt file ([system]/[user] sections)
    max_attempts: int = 3  # generations per seed before it is rejected
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
