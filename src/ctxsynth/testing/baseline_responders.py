"""Responders that play the generator of the two synthesis baselines on the local OpenAI server.

`instruction_writer` reads the document of an instruction-synthesis prompt and asks about the words
that follow a phrase of it (the answer is copied from the document, so it is grounded);
`multidoc_writer` answers a multi-document prompt with the requested number of documents, each
stating the facts assigned to it and the last one also the answer. Both are deterministic in the
request (sampling seed included), so reruns hit the request cache exactly.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from ctxsynth.testing.judge_responders import containment_judge
from ctxsynth.testing.scripting import Reply

_DOCUMENT = re.compile(r"Document:\s*(.+?)\s*Write one new question", re.DOTALL)
_N_DOCS = re.compile(r"Write exactly (\d+) documents")
_FACT = re.compile(r"^Document (\d+) must state: (.+)$", re.MULTILINE)
_PER_DOC = re.compile(r"about (\d+) words per document")
_QUESTION = re.compile(r"Question:\s*(.+?)\s*\n")
_ANSWER = re.compile(r"Answer:\s*(.+?)\s*\n")
_FILLER = (
    "travellers from the valley towns wrote letters about the weather the markets the roads and the songs "
    "of the season while a printer in the harbour kept copies of every pamphlet that crossed his desk"
).split()


def _user(body: dict[str, Any]) -> str:
    return [m["content"] for m in body.get("messages", []) if m.get("role") == "user"][-1]


def _system(body: dict[str, Any]) -> str:
    return "".join(m["content"] for m in body.get("messages", []) if m.get("role") == "system")


def instruction_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The document shown in an instruction-synthesis request, and the request's sampling seed."""
    found = _DOCUMENT.search(_user(body))
    return {"document": found.group(1) if found else "", "seed": body.get("seed")}


def qa_about(text: str, seed: Any) -> tuple[str, str]:
    """A question about `text` whose answer is the two words after a four-word phrase of it."""
    words = text.split()
    rng = random.Random(hashlib.sha256(f"{text[:200]}|{seed}".encode()).hexdigest())
    for _ in range(200):
        i = rng.randrange(max(len(words) - 6, 1))
        run = words[i : i + 6]
        if len(run) < 6 or not all(w.isalpha() and len(w) > 2 for w in run):
            continue
        phrase, answer = " ".join(run[:4]), " ".join(run[4:])
        if answer.lower() not in phrase.lower():
            return f"In the document, which two words come right after the phrase '{phrase}'?", answer
    return "What is the first word of the document?", words[0] if words else "none"


def instruction_writer(body: dict[str, Any]) -> Reply:
    f = instruction_fields(body)
    question, answer = qa_about(f["document"], f["seed"])
    return Reply(f"Question: {question}\nAnswer: {answer}")


def multidoc_fields(body: dict[str, Any]) -> dict[str, Any]:
    """n, the fact of each document, words per document, question and answer of a multidoc request."""
    user, system = _user(body), _system(body)
    n = _N_DOCS.search(system)
    words = _PER_DOC.search(user)
    question, answer = _QUESTION.search(user), _ANSWER.search(user)
    return {
        "n": int(n.group(1)) if n else 2, "facts": dict((int(k), v) for k, v in _FACT.findall(user)),
        "words": int(words.group(1)) if words else 100, "question": question.group(1) if question else "",
        "answer": answer.group(1) if answer else "", "seed": body.get("seed"),
    }


def filler(n_words: int, key: str) -> str:
    rng = random.Random(hashlib.sha256(key.encode()).hexdigest())
    return " ".join(rng.choice(_FILLER) for _ in range(n_words)) + "."


def multidoc_documents(f: dict[str, Any]) -> list[str]:
    """The documents a faithful generator would write for the parsed request fields."""
    docs = []
    for k in range(1, f["n"] + 1):
        fact = f["facts"].get(k, "")
        text = filler(max(f["words"] - len(fact.split()), 10), f"{f['question']}|{k}|{f['seed']}")
        closing = f" In the end it was {f['answer']}." if k == f["n"] else ""
        docs.append(f"{fact} {text}{closing}".strip())
    return docs


def render_documents(docs: list[str]) -> str:
    return "\n\n".join(f"=== Document {k} ===\n{d}" for k, d in enumerate(docs, 1))


def multidoc_writer(body: dict[str, Any]) -> Reply:
    judged = containment_judge(body)  # yes/no answers are judged: the documents state them verbatim
    if judged is not None:
        return judged
    return Reply(render_documents(multidoc_documents(multidoc_fields(body))))
