"""Context-reliance score: how much a context raises the model's belief in the answer.

    reliance = mean log p(answer tokens | context + instruction) - mean log p(answer tokens | instruction)

in nats per answer token, under a scoring model (any local causal LM, the embedded SmolLM2 by
default), chat template applied. Positive: the context makes the answer more likely, so the pair
leans on it; near zero: the model is as sure (or unsure) without it. It is a per-example proxy for
the paper's training-based instruction-context coherence diagnostic; docs/filters.md says where
it misleads. Seeds are scored with their original human context; `score_synthesized` scores a
synthetic context. With a threshold, records below it are dropped ("low_context_reliance").
With `question: true` (or a `question_threshold`) the question probe is stored too
(`question_reliance`, see `question_reliance_scores`), and records whose probe is below
`question_threshold` are dropped ("low_question_reliance").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxsynth.filters.config import FiltersConfig, RelianceConfig
from ctxsynth.filters.registry import Filter, FilterContext
from ctxsynth.filters.scoring import AnswerScorer, Triple
from ctxsynth.filters.verdict import Verdict
from ctxsynth.records import Seed, Synthesized


def build_scorer(config: RelianceConfig, cache_path: Path | None = None) -> AnswerScorer:
    return AnswerScorer(config.model, cache_path=cache_path, token_budget=config.token_budget,
                        max_context_tokens=config.max_context_tokens, device=config.device, dtype=config.dtype)


def reliance_scores(scorer: AnswerScorer, triples: Sequence[Triple]) -> list[dict[str, Any]]:
    """Score (context, instruction, answer) triples: with, without, their difference, token counts."""
    with_ctx = scorer.mean_logprobs(list(triples))
    without = scorer.mean_logprobs([(None, ins, ans) for _, ins, ans in triples])
    return [{"reliance": round(w.mean_logprob - wo.mean_logprob, 5), "with_context": round(w.mean_logprob, 5),
             "without_context": round(wo.mean_logprob, 5), "answer_tokens": w.answer_tokens,
             "prompt_tokens": w.prompt_tokens, "context_truncated": w.context_truncated}
            for w, wo in zip(with_ctx, without, strict=True)]


QUESTION_PROBE = Path(__file__).parent / "prompts" / "question_probe.txt"


def question_probe() -> str:
    """The instruction that asks for a question about the context (the file minus '#' lines)."""
    lines = QUESTION_PROBE.read_text(encoding="utf-8").splitlines()
    return " ".join(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def question_reliance_scores(scorer: AnswerScorer, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """For (context, question) pairs: mean log p(question | context + probe) - mean log p(question | probe),
    in nats per question token. High when the context makes this question likely (it is about what
    the question asks), whatever the answer; an answer string pasted into unrelated text does not
    raise it. Used beside `reliance_scores` (docs/filters.md, benchmarks/reliance_auc.py)."""
    probe = question_probe()
    with_ctx = scorer.mean_logprobs([(ctx, probe, question) for ctx, question in pairs])
    without = scorer.mean_logprobs([(None, probe, question) for _, question in pairs])
    return [round(w.mean_logprob - wo.mean_logprob, 5) for w, wo in zip(with_ctx, without, strict=True)]


def _answer(answers: Sequence[str]) -> str:
    """The first accepted answer is scored (the others are aliases of it)."""
    return answers[0] if answers else ""


class RelianceFilter:
    name = "reliance"
    global_pass = False  # judges each record alone

    def __init__(self, config: RelianceConfig, scorer: AnswerScorer) -> None:
        self.config = config
        self.scorer = scorer

    def check(self, seeds: Sequence[Seed]) -> list[Verdict]:
        """Seeds with their original human context; seeds without one are kept unscored."""
        pairs = [(s.context, s.instruction, _answer(s.answers)) for s in seeds]
        return self._verdicts(pairs)

    def check_synthesized(self, records: Sequence[Synthesized]) -> list[Verdict]:
        pairs = [(r.context, r.seed.instruction, _answer(r.seed.answers)) for r in records]
        return self._verdicts(pairs)

    def _verdicts(self, pairs: Sequence[tuple[str | None, str, str]]) -> list[Verdict]:
        scored = [i for i, (ctx, _, _) in enumerate(pairs) if ctx]
        results = reliance_scores(self.scorer, [pairs[i] for i in scored])  # type: ignore[misc]
        if self.config.question or self.config.question_threshold is not None:
            probes = question_reliance_scores(self.scorer, [(pairs[i][0] or "", pairs[i][1]) for i in scored])
            for scores, probe in zip(results, probes, strict=True):
                scores["question_reliance"] = probe
        verdicts = [Verdict.kept("no context to score", scored=False) for _ in pairs]
        for i, scores in zip(scored, results, strict=True):
            verdicts[i] = self._verdict(scores)
        return verdicts

    def _verdict(self, scores: dict[str, Any]) -> Verdict:
        """Drop below `threshold` (reliance) first, then below `question_threshold` (question probe)."""
        threshold, q_threshold = self.config.threshold, self.config.question_threshold
        if threshold is not None and scores["reliance"] < threshold:
            return Verdict.drop("low_context_reliance", f"reliance {scores['reliance']:.3f} < {threshold}", **scores)
        if q_threshold is not None and scores["question_reliance"] < q_threshold:
            return Verdict.drop("low_question_reliance",
                                f"question probe {scores['question_reliance']:.3f} < {q_threshold}", **scores)
        return Verdict.kept("", **scores)


def score_synthesized(records: Sequence[Synthesized], config: RelianceConfig | None = None,
                      scorer: AnswerScorer | None = None, cache_path: Path | None = None) -> list[Synthesized]:
    """Store the reliance score of each synthetic context in `verdicts["reliance"]` (new records)."""
    config = config or RelianceConfig()
    scorer = scorer or build_scorer(config, cache_path)
    verdicts = RelianceFilter(config, scorer).check_synthesized(records)
    out = []
    for record, verdict in zip(records, verdicts, strict=True):
        marks = {**verdict.scores, "keep": verdict.keep, "reason": verdict.reason}
        out.append(Synthesized(**{**record.__dict__, "verdicts": {**record.verdicts, "reliance": marks}}))
    return out


def from_config(config: FiltersConfig, context: FilterContext) -> list[Filter]:
    if not config.reliance.enabled:
        return []
    scores = context.cache_dir / "scores.sqlite" if context.cache_dir else None
    return [RelianceFilter(config.reliance, build_scorer(config.reliance, scores))]
