"""Warnings a reader of the dataset card must not miss, each a rule over the run summary.

Thresholds are deliberately simple and stated in the text of each caveat, so a reader can judge
whether it matters for their use.
"""

from __future__ import annotations

import statistics

from ctxsynth.report.collect import RunSummary

HIGH_REJECTION = 0.2  # share of a stage's input dropped
SHORT_CONTEXT = 0.5  # mean synthesized words below this share of the requested length
LOW_FILL = 0.9  # mean sample tokens below this share of the target
TRUNCATED = 0.1  # share of generations that stopped on the token limit
SMALL_GENERATORS = ("smollm2", "smollm2-135m", "SmolLM2-135M-Instruct")


def stage_input(s: RunSummary, stage: str, dropped: int) -> int:
    """Records that entered a stage: its marker count when present, else kept + dropped."""
    info = s.stage(stage)
    if info is not None and info.n_in:
        return info.n_in
    kept = {"seeds": sum(s.seed_tasks.values()), "synth": len(s.context_words), "verify": len(s.context_words),
            "assemble": len(s.samples)}.get(stage, 0)  # by folder name (a record without a stage field)
    kept = {"synthesize": len(s.context_words)}.get(stage, kept)  # by the stage name records carry
    return kept + dropped


def rejection_caveats(s: RunSummary) -> list[str]:
    out = []
    for stage in sorted({stage for stage, _ in s.rejections}):
        reasons = {r: n for (st, r), n in s.rejections.items() if st == stage}
        dropped = sum(reasons.values())
        total = stage_input(s, stage, dropped)
        if total and dropped / total > HIGH_REJECTION:
            top = max(reasons, key=lambda r: reasons[r])
            out.append(f"High rejection rate at **{stage}**: {dropped} of {total} records dropped "
                       f"({dropped / total:.0%}; above {HIGH_REJECTION:.0%}), mostly `{top}` ({reasons[top]}).")
    return out


def length_caveats(s: RunSummary) -> list[str]:
    out = []
    if s.context_words and s.target_words:
        mean = statistics.fmean(s.context_words)
        if mean < SHORT_CONTEXT * s.target_words:
            out.append(f"Synthesized contexts are much shorter than requested: {mean:.0f} words on average "
                       f"against {s.target_words} asked ({mean / s.target_words:.0%}).")
    pairs = [(r.total, r.target) for r in s.samples if r.total is not None and r.target]
    if pairs:
        over = sum(total > target for total, target in pairs)
        if over:
            out.append(f"{over} of {len(pairs)} samples exceed their token target: the assembly budget was broken.")
        fill = statistics.fmean(total / target for total, target in pairs)
        if fill < LOW_FILL:
            out.append(f"Samples fill only {fill:.0%} of their token targets on average: the document pool "
                       "is too small or too short for the targets.")
    return out


def generation_caveats(s: RunSummary, prices: dict | None) -> list[str]:
    out = []
    finished = sum(s.finish_reasons.values())
    if finished and s.finish_reasons.get("length", 0) / finished > TRUNCATED:
        out.append(f"{s.finish_reasons['length']} of {finished} contexts stopped on the generator's token "
                   "limit (finish_reason=length): they may end mid-sentence.")
    small = [m for m in s.usage if any(name.lower() in m.lower() for name in SMALL_GENERATORS)]
    if small:
        out.append(f"Generator {', '.join(small)} is the tiny embedded default model: expect weak, "
                   "sometimes incoherent contexts; use it for smoke tests, not for training data.")
    if prices:
        unpriced = [m for m, u in s.usage.items() if u.calls and m not in prices]
        if unpriced:
            out.append(f"No price for {', '.join(unpriced)}: their cost is left out of the totals.")
    failed = sum(n for (_, outcome), n in s.verdicts.items() if outcome == "fail")
    judged = sum(n for (_, outcome), n in s.verdicts.items() if outcome in ("pass", "fail"))
    if judged and failed / judged > HIGH_REJECTION:
        out.append(f"{failed} of {judged} verification verdicts failed ({failed / judged:.0%}).")
    return out


def partial_caveat(s: RunSummary) -> list[str]:
    missing = [st.name for st in s.stages if st.tracked and not st.done]
    info = s.stage("assemble")
    if not s.samples and info is not None and (info.done or info.shards_done):
        dropped = sum(n for (stage, _), n in s.rejections.items() if stage == "assemble")
        return [f"Assembly produced 0 samples from {len(s.context_words)} verified contexts ({dropped} rejected "
                "at assembly; see the Rejections table)."]
    if not s.samples:
        return ["Partial run: assembly has not produced samples yet, so only the earlier stages are "
                f"reported. Stages not finished: {', '.join(missing) or 'assemble onward'}."]
    if missing:
        return [f"Stages not finished: {', '.join(missing)}; counts may grow when they complete."]
    return []


def fake_caveat(s: RunSummary) -> list[str]:
    if not s.fake_backend:
        return []
    return ["Contexts came from the `fake` backend (canned test text, no language model): not training data."]


def caveats(s: RunSummary, prices: dict | None) -> list[str]:
    return fake_caveat(s) + partial_caveat(s) + rejection_caveats(s) + length_caveats(s) + generation_caveats(s, prices)
