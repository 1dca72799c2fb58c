"""Responders for the local OpenAI-protocol server that play a context-synthesis generator.

`context_writer` answers a context-synthesis prompt with a deterministic document that contains the
requested answer, sized to the requested word count. Tests use it (and crafted variants) to drive
the real HTTP path end to end without a model; docs use it for an offline walkthrough.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from ctxsynth.testing.scripting import Reply

_ANSWER = re.compile(r"Answer:\s*(.+?)\s*(?:\n|Write the missing)", re.DOTALL)
_QUESTION = re.compile(r"Question:\s*(.+?)\s*\n", re.DOTALL)
_WORDS = re.compile(r"about (\d+) words")
_FILLER = (
    "the archive records that the committee met in the northern hall where several delegates "
    "described the harvest the river trade and the new bridge while clerks copied the accounts "
    "into ledgers that later historians consulted when they wrote about the period"
).split()


def prompt_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Question, answer and target words parsed from a context-synthesis request body."""
    user = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"][-1]
    answer = _ANSWER.search(user)
    question = _QUESTION.search(user)
    words = _WORDS.search(user)
    return {
        "question": question.group(1).strip() if question else "",
        "answer": answer.group(1).strip() if answer else "",
        "target_words": int(words.group(1)) if words else 200,
        "seed": body.get("seed"),
    }


def document(question: str, answer: str, n_words: int, seed: Any) -> str:
    """A deterministic pseudo-document of about n_words words that states the answer once."""
    rng = random.Random(hashlib.sha256(f"{question}|{answer}|{seed}".encode()).hexdigest())
    words = [rng.choice(_FILLER) for _ in range(max(0, n_words - 12))]
    middle = len(words) // 2
    fact = f". Regarding the question {question.rstrip('?')} the answer is {answer} ."
    return " ".join(words[:middle]) + fact + " " + " ".join(words[middle:])


def context_writer(body: dict[str, Any]) -> Reply:
    f = prompt_fields(body)
    return Reply("Context: " + document(f["question"], f["answer"], f["target_words"], f["seed"]))
