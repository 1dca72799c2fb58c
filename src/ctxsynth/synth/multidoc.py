"""Multi-document synthesis: the evidence of a multi-hop seed is split over 2-4 generated documents.

The paper's context synthesis writes one document per pair and trails human contexts on multi-doc
QA (PAPER.md section 5); here the generator writes `n` documents, each told which supporting facts
it must carry (evidence.py), separated by strict "=== Document k ===" lines. Verification: the right
number of documents; each one a usable document (the context checks, per document); each evidence
part present in its own document; the answer supported by the union; and, with `require_split`, no
single document carrying every part (else the sample is single-document QA in disguise). Whether a
single document contains the answer string is recorded, not judged: bridge questions often name
the answer in the second document. The assembler places the documents apart (assemble/assembler.py).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from ctxsynth.llm.base import Message
from ctxsynth.records import Attempt, Seed, Synthesized
from ctxsynth.synth import evidence
from ctxsynth.synth.config import SynthConfig
from ctxsynth.synth.tasks import ParseError, PromptTemplate, genre_for, prompt_path
from ctxsynth.verify.checks import REASONS as CONTEXT_REASONS
from ctxsynth.verify.checks import VerifyConfig, answer_support, string_support, verify_context

REASONS = (
    "request_failed", "truncated", "parse_failure",  # shared, checked by the stage
    "wrong_document_count", "refusal", "too_short", "too_long", "repetition",  # per document
    "evidence_missing", "answer_not_supported", "evidence_not_split",
)
_DELIMITER = re.compile(r"^[ \t*#]*=+[ \t]*document[ \t]+(\d+)[ \t]*=+[ \t*]*$", re.IGNORECASE | re.MULTILINE)
_PER_DOCUMENT = ("refusal", "too_short", "too_long", "repetition")


def parse_documents(text: str) -> list[str]:
    """The documents between "=== Document k ===" lines, numbered 1, 2, ... in order."""
    marks = list(_DELIMITER.finditer(text))
    if not marks:
        raise ParseError('no "=== Document k ===" line in the reply')
    numbers = [int(m.group(1)) for m in marks]
    if numbers != list(range(1, len(marks) + 1)):
        raise ParseError(f"documents numbered {numbers}, expected 1..{len(marks)} in order")
    ends = [m.start() for m in marks[1:]] + [len(text)]
    documents = [text[m.end() : end].strip() for m, end in zip(marks, ends, strict=True)]
    empty = [k for k, d in enumerate(documents, 1) if not d]
    if empty:
        raise ParseError(f"empty document(s) {empty}")
    return documents


class MultiDocSynthesis:
    """Write n documents that together, and only together, answer a multi-hop question."""

    name = "multidoc"
    reasons = REASONS

    @classmethod
    def from_config(cls, config: SynthConfig, run_seed: int = 0) -> MultiDocSynthesis:
        return cls(target_words=config.target_words, genre=config.genre, prompt_file=config.prompt_file,
                   documents=config.documents, evidence_recall=config.evidence_recall,
                   require_split=config.require_split)

    def __init__(self, target_words: int = 2000, genre: str = "auto", prompt_file: str | None = None,
                 documents: int = 0, evidence_recall: float = 0.5, require_split: bool = True) -> None:
        self.target_words = target_words
        self.genre = genre
        self.documents = documents
        self.evidence_recall = evidence_recall
        self.require_split = require_split
        self.template = PromptTemplate.from_file(prompt_path(prompt_file, "multidoc_synthesis.txt"))
        genre_for("", genre)

    def plan(self, seed: Seed) -> tuple[int, list[str]]:
        """(number of documents, evidence part per document; [] when the seed has no facts)."""
        n = evidence.document_count(seed, self.documents)
        parts = evidence.evidence_parts(seed, n)
        return (len(parts) if parts else n), parts

    def words_per_document(self, n: int) -> int:
        return max(self.target_words // n, 1)

    def unusable(self, seed: Seed) -> str | None:
        return None

    def prompt(self, seed: Seed) -> list[Message]:
        n, parts = self.plan(seed)
        g = genre_for(seed.task, self.genre)
        return self.template.render(
            n=n, genre=g["genre"], genre_detail=g["detail"], instruction=seed.instruction.strip(),
            answer=seed.answers[0].strip(), evidence=evidence.render_evidence(parts, n),
            words_per_document=self.words_per_document(n),
        )

    def parse(self, text: str) -> list[str]:
        return parse_documents(text)

    def verify(self, seed: Seed, fields: list[str], finish_reason: str | None,
               config: VerifyConfig) -> tuple[str | None, dict[str, Any]]:
        n, parts = self.plan(seed)
        verdicts: dict[str, Any] = {"finish_reason": finish_reason, "documents": len(fields), "expected": n}
        if len(fields) != n:
            return "wrong_document_count", verdicts
        reason = self._each_document(fields, finish_reason, n, config, verdicts)
        if reason is not None:
            return reason, verdicts
        recalls = [[round(evidence.recall(part, doc), 4) for part in parts] for doc in fields]
        verdicts["evidence_recall"] = recalls  # [document][part]
        if any(recalls[k][k] < self.evidence_recall for k in range(len(parts))):
            return "evidence_missing", verdicts
        verdicts["support"] = answer_support("\n\n".join(fields), seed.answers, config)
        verdicts["answer_in_documents"] = [string_support(d, seed.answers, config)["supported"] for d in fields]
        if "answer_not_supported" in set(config.checks or CONTEXT_REASONS) and verdicts["support"]["supported"] is False:
            return "answer_not_supported", verdicts
        carries_all = [all(r >= self.evidence_recall for r in row) for row in recalls] if len(parts) > 1 else []
        verdicts["carries_all_evidence"] = carries_all
        if self.require_split and any(carries_all):
            return "evidence_not_split", verdicts
        return None, verdicts

    def _each_document(self, documents: list[str], finish_reason: str | None, n: int, config: VerifyConfig,
                       verdicts: dict[str, Any]) -> str | None:
        """The context checks that make sense per document (not answer support); first failure."""
        enabled = [c for c in (config.checks or CONTEXT_REASONS) if c in _PER_DOCUMENT]
        per_document = replace(config, checks=enabled or ["request_failed"])
        verdicts["per_document"] = []
        for doc in documents:
            reason, found = verify_context(doc, finish_reason, [], self.words_per_document(n), per_document)
            found.pop("finish_reason", None)
            verdicts["per_document"].append(found)
            if reason is not None:
                return reason
        return None

    def build(self, seed: Seed, fields: list[str], provenance: dict[str, Any], verdicts: dict[str, Any],
              attempts: list[Attempt]) -> Synthesized:
        n, parts = self.plan(seed)
        provenance = {**provenance, "documents": n, "words_per_document": self.words_per_document(n),
                      "evidence_parts": parts}
        return Synthesized(seed.id, seed.task, seed, "\n\n".join(fields), provenance, verdicts, attempts,
                           documents=list(fields))
