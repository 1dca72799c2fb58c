"""Scripting the support judge of the synthesize stage on the local OpenAI server.

A responder that plays the generator also receives the judge's requests (ctxsynth.verify.judge)
when an answer is non-extractive. `judge_fields` tells them apart and reads the judged document,
question and answer, so a test can script the verdict from what was actually asked.
"""

from __future__ import annotations

import re
from typing import Any

from ctxsynth.testing.scripting import Reply

_JUDGE = re.compile(r"Document:\s*(.*?)\s*Question:\s*(.*?)\s*Proposed answer:\s*(.*?)\s*Reply SUPPORTED", re.DOTALL)


def judge_fields(body: dict[str, Any]) -> dict[str, str] | None:
    """{"document", "question", "answer"} of a support-judge request, or None for any other request."""
    system = "".join(m["content"] for m in body.get("messages", []) if m.get("role") == "system")
    if "SUPPORTED: yes or SUPPORTED: no" not in system:
        return None
    user = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"][-1]
    found = _JUDGE.search(user)
    if found is None:
        raise ValueError(f"support-judge request in an unexpected layout: {user[:200]!r}")
    return {"document": found.group(1), "question": found.group(2), "answer": found.group(3)}


def containment_judge(body: dict[str, Any]) -> Reply | None:
    """For responders whose documents state the answer word for word: "SUPPORTED: yes" when the
    judged document contains the answer (case-insensitive), "SUPPORTED: no" otherwise; None when
    the request is not a judge request."""
    fields = judge_fields(body)
    if fields is None:
        return None
    found = fields["answer"].lower() in fields["document"].lower()
    return Reply(f"SUPPORTED: {'yes' if found else 'no'}")
