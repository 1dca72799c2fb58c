"""Reading and checking a generated question-answer pair (the instruction-synthesis reply).

The format is strict: one "Question:" label, then one "Answer:" label, each at the start of a line
(markdown bold or a list marker in front is tolerated). Anything else is a ParseError naming what is
wrong, so the stage can record it as a parse failure and ask again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctxsynth.synth.tasks import ParseError

_LABEL = re.compile(r"^[ \t>*#-]*\**\s*(question|answer)\s*\**\s*:\s*\**[ \t]*", re.IGNORECASE | re.MULTILINE)
# a generator declining, or saying the document does not allow a question
REFUSAL = re.compile(
    r"\b(I(?:'m| am) (?:sorry|unable|not able)|I can(?:no|')t (?:help|assist|provide|write|create|comply)"
    r"|as an AI(?: language model)?|I apologi[sz]e|(?:the|this) (?:document|text) does not (?:contain|mention|say)"
    r"|not (?:mentioned|stated|specified) in the (?:document|text)|no (?:question|answer) can be)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str


def parse_qa(text: str) -> QAPair:
    labels = [(m.group(1).lower(), m.start(), m.end()) for m in _LABEL.finditer(text)]
    names = [name for name, _, _ in labels]
    if names.count("question") != 1 or names.count("answer") != 1:
        raise ParseError(f'expected one "Question:" and one "Answer:" line, found {names or "no labels"}')
    (first, _, q_end), (second, a_start, a_end) = labels
    if (first, second) != ("question", "answer"):
        raise ParseError('"Answer:" comes before "Question:"')
    question = " ".join(text[q_end:a_start].split()).strip("* ")
    answer = " ".join(text[a_end:].split()).strip("* ")
    if not question:
        raise ParseError('empty question after "Question:"')
    if not answer:
        raise ParseError('empty answer after "Answer:"')
    return QAPair(question, answer)
