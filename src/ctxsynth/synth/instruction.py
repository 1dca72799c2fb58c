"""The instruction-synthesis baseline (PAPER.md section 3): the LLM reads a real document and writes
a new question and its answer about it.

Per seed, a contiguous chunk of about `chunk_words` words of a long document is shown (chunks.py);
the reply is parsed strictly (qa_format.py) and verified: not a refusal, a real question, not copied
from the document, the answer not given away by the question, and the answer grounded in the chunk
(the same support measure as context verification). The output is a `Synthesized` record shaped
exactly like a context-synthesis one (context = the document chunk, seed = the synthetic pair, the
original human pair kept in provenance), so assembly and export treat both baselines alike.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ctxsynth.errors import ConfigError
from ctxsynth.eval.metrics import contains_normalized, normalize_answer
from ctxsynth.llm.base import Message
from ctxsynth.records import Attempt, Seed, Synthesized
from ctxsynth.synth.chunks import Chunk, ChunkSource
from ctxsynth.synth.config import SynthConfig
from ctxsynth.synth.qa_format import REFUSAL, QAPair, parse_qa
from ctxsynth.synth.tasks import PromptTemplate, prompt_path
from ctxsynth.verify.checks import VerifyConfig, answer_support

log = logging.getLogger(__name__)

REASONS = (
    "request_failed", "truncated", "parse_failure",  # shared, checked by the stage
    "refusal", "question_too_short", "answer_too_long", "question_copied", "answer_in_question",
    "answer_not_grounded",
)
_UNQUOTABLE = {"yes", "no"}  # answers that may legitimately appear in their question


class InstructionSynthesis:
    """Write a new question-answer pair about a chunk of a real document."""

    name = "instruction"
    reasons = REASONS

    @classmethod
    def from_config(cls, config: SynthConfig, run_seed: int = 0) -> InstructionSynthesis:
        return cls(chunk_words=config.chunk_words, corpus=config.corpus, prompt_file=config.prompt_file,
                   run_seed=run_seed)

    def __init__(self, prompt_file: str | None = None, chunk_words: int = 3000, corpus: str | None = None,
                 run_seed: int = 0, max_answer_words: int = 30, min_question_words: int = 3) -> None:
        self.template = PromptTemplate.from_file(prompt_path(prompt_file, "instruction_synthesis.txt"))
        self.chunks = ChunkSource(chunk_words, corpus, run_seed)
        self.max_answer_words = max_answer_words
        self.min_question_words = min_question_words

    def unusable(self, seed: Seed) -> str | None:
        return "no_document" if self.chunks.chunk(seed) is None else None

    def _chunk(self, seed: Seed) -> Chunk:
        chunk = self.chunks.chunk(seed)
        if chunk is None:
            raise ConfigError(f"seed {seed.id} has no document (no context and no corpus configured)")
        return chunk

    def prompt(self, seed: Seed) -> list[Message]:
        return self.template.render(document=self._chunk(seed).text, max_answer_words=self.max_answer_words)

    def parse(self, text: str) -> QAPair:
        return parse_qa(text)

    def verify(self, seed: Seed, fields: QAPair, finish_reason: str | None,
               config: VerifyConfig) -> tuple[str | None, dict[str, Any]]:
        chunk = self._chunk(seed)
        question, answer = fields.question, fields.answer
        refusal = REFUSAL.search(f"{question}\n{answer}")
        verdicts: dict[str, Any] = {
            "finish_reason": finish_reason, "question_words": len(question.split()),
            "answer_words": len(answer.split()), "chunk_words": chunk.words,
            "refusal_match": refusal.group(0) if refusal else None,
        }
        if refusal:
            return "refusal", verdicts
        if len(question.split()) < self.min_question_words:
            return "question_too_short", verdicts
        if len(answer.split()) > 2 * self.max_answer_words:
            return "answer_too_long", verdicts
        verdicts["question_in_document"] = contains_normalized(chunk.text, question)
        if verdicts["question_in_document"]:
            return "question_copied", verdicts
        if normalize_answer(answer) not in _UNQUOTABLE and contains_normalized(question, answer):
            return "answer_in_question", verdicts
        verdicts["support"] = answer_support(chunk.text, [answer], config, judge_reason="answer_not_grounded")
        if verdicts["support"]["supported"] is False:
            return "answer_not_grounded", verdicts
        return None, verdicts

    def build(self, seed: Seed, fields: QAPair, provenance: dict[str, Any], verdicts: dict[str, Any],
              attempts: list[Attempt]) -> Synthesized:
        chunk = self._chunk(seed)
        synthetic = replace(seed, instruction=fields.question, answer=fields.answer, context=None,
                            meta=dict(seed.meta))
        provenance = {
            **provenance, "chunk": chunk.provenance(),
            "original_seed": {"instruction": seed.instruction, "answer": seed.answer},
        }
        return Synthesized(seed.id, seed.task, synthetic, chunk.text, provenance, verdicts, attempts)
