"""The human-context arm: each seed's own human-written context stands in for a synthetic one.

Seeds that come with their real context (SQuAD paragraphs, HotpotQA supporting paragraphs, any seed
file with a `context` field) become `Synthesized` records without a model call, so assembly,
distractors and export treat "human contexts" exactly like synthesized ones: the same run config
with `synth.task: human` is the human row of a comparison. A seed without a context is rejected
with the reason `no_context`; no LLM is built or asked (`needs_llm = False`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ctxsynth.records import Attempt, Rejected, Seed, Synthesized, to_dict
from ctxsynth.synth.config import SynthConfig
from ctxsynth.synth.tasks import PromptTemplate
from ctxsynth.verify.checks import VerifyConfig

NO_CONTEXT = "no_context"


class HumanContexts:
    """`synth.task: human`: the seed's context is the record's context, verbatim (whitespace-stripped)."""

    name = "human"
    needs_llm = False
    reasons = (NO_CONTEXT,)
    # no prompt is sent; the empty template keeps the task shape (provenance hashes the task name)
    template = PromptTemplate("", "", hashlib.sha256(b"human").hexdigest()[:16])

    @classmethod
    def from_config(cls, config: SynthConfig, run_seed: int = 0) -> HumanContexts:
        return cls()

    def unusable(self, seed: Seed) -> str | None:
        return None if seed.context and seed.context.strip() else NO_CONTEXT

    def prompt(self, seed: Seed) -> list[dict[str, str]]:
        # not a stub: this task sends no request, and every caller checks synth.tasks.needs_llm first;
        # a new caller that forgets fails here, loudly, instead of sending an empty prompt
        raise RuntimeError("the human task sends no prompt: check ctxsynth.synth.tasks.needs_llm(task) before prompt()")

    def parse(self, text: str) -> str:
        return text

    def verify(self, seed: Seed, fields: Any, finish_reason: str | None,
               config: VerifyConfig) -> tuple[str | None, dict[str, Any]]:
        return None, {}

    def build(self, seed: Seed, fields: str, provenance: dict[str, Any], verdicts: dict[str, Any],
              attempts: list[Attempt]) -> Synthesized:
        return Synthesized(seed.id, seed.task, seed, fields, provenance, verdicts, attempts)


def human_shard(seeds: list[Seed], task: HumanContexts) -> tuple[list[Synthesized], list[Rejected], dict[str, Any]]:
    """Kept records, rejections (seeds without a context) and the shard's counts."""
    kept: list[Synthesized] = []
    rejected: list[Rejected] = []
    provenance = {"task": task.name, "backend": "none", "model": "human", "source": "seed context",
                  "target_words": None, "attempts": 0}  # target_words: no length was asked
    for seed in seeds:
        reason = task.unusable(seed)
        if reason is not None:
            detail = "synth.task=human needs seeds with a context field; this seed has none"
            rejected.append(Rejected(seed.id, "synthesize", reason, detail,
                                     {"seed": to_dict(seed), "provenance": dict(provenance)}))
            continue
        assert seed.context is not None
        kept.append(task.build(seed, seed.context.strip(), dict(provenance), {}, []))
    stats: dict[str, Any] = {"n_in": len(seeds), "n_out": len(kept)}
    if rejected:
        stats[f"dropped_{NO_CONTEXT}"] = len(rejected)
    return kept, rejected, stats
