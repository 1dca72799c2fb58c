"""LLM judge for answers that no string check can support: does the generated document support them?

`answer_support` marks a yes/no/unanswerable-like answer, or a short answer found nowhere as a span,
as `supported: None` with `method: "judge"` (ctxsynth.verify.checks). The synthesize stage then asks
a judge (by default the synthesis model itself, through the same backend and request cache) with
`prompts/support_judge.txt`, and `resolve` turns the reply into the final verdict. No entailment
(NLI) model is used: none is available offline here (the embedded MiniLM is a sentence-embedding
model, not an NLI classifier), and an LLM judge works with any configured backend.

The reply must say "SUPPORTED: yes" or "SUPPORTED: no"; the parser also takes a reply that starts
with a bare yes/no, with markdown or other casing. A reply that says neither, or a request that
failed for a reason of its own (not an outage), counts as unsupported: the point of the judge is
that such answers no longer pass by accident.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ctxsynth.llm.base import ChatRequest, ChatResult, SamplingParams
from ctxsynth.rng import derive_seed
from ctxsynth.synth.tasks import PromptTemplate
from ctxsynth.verify.checks import VerifyConfig

PROMPT = Path(__file__).parent / "prompts" / "support_judge.txt"
_KEYED = re.compile(r"SUPPORT(?:ED|S)?[\"'*_ ]*\s*[:=\-]\s*[\"'*_ ]*(yes|no|true|false)\b", re.IGNORECASE)
_LEADING = re.compile(r"^[\s\"'*_#>`]*(yes|no)\b", re.IGNORECASE)


def parse_supported(text: str) -> bool | None:
    """True / False from a judge reply, None when it says neither."""
    found = _KEYED.search(text) or _LEADING.search(text)
    return None if found is None else found.group(1).lower() in ("yes", "true")


def needs_judge(verdicts: dict[str, Any]) -> bool:
    support = verdicts.get("support")
    return isinstance(support, dict) and support.get("method") == "judge" and support.get("supported") is None


class SupportJudge:
    """Builds judge requests and reads their replies (the stage sends them)."""

    def __init__(self, config: VerifyConfig, run_seed: int = 0) -> None:
        self.config = config
        self.run_seed = run_seed
        self.template = PromptTemplate.from_file(Path(config.judge_prompt_file or PROMPT))

    def request(self, key: str, attempt: int, context: str, instruction: str, answer: str) -> ChatRequest:
        messages = self.template.render(context=context.strip(), instruction=instruction.strip(), answer=answer.strip())
        params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=self.config.judge_max_tokens,
                                seed=derive_seed(self.run_seed, "verify-judge", key, attempt))
        return ChatRequest(messages, params, id=key)

    def resolve(self, support: dict[str, Any], result: ChatResult) -> dict[str, Any]:
        """The support verdict after the judge's reply: `supported` True/False, the reply kept."""
        if not result.answered:  # a reply cut at max_tokens still counts: the verdict comes first
            verdict, how = False, f"judge request failed: {result.error}"
        else:
            parsed = parse_supported(result.text or "")
            verdict, how = bool(parsed), "judge reply names no verdict" if parsed is None else "judge"
        return {**support, "supported": verdict, "judge": {"reply": (result.text or "")[:300], "how": how,
                                                           "prompt_sha256": self.template.sha256}}

