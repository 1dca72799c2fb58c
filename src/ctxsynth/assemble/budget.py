"""Exact token counts of a rendered sample without re-tokenizing it.

A sample renders as chat-prefix + template head + documents (with separators) + template tail +
chat turn switch + answer + chat end, exactly as `tokenizer.render_chat([user, assistant])` gives it.
`fast_count` adds each document's cached middle count to the tokens of the short strings that
bridge consecutive documents (tail of one + separator + head of the next), which are the only places
where tokens can form across a boundary. `full_count` re-tokenizes the whole render: the reference
that `fast_count` is tested against, and the fallback for tokenizers where the cut rule fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ctxsynth.assemble.documents import Doc
from ctxsynth.errors import ConfigError
from ctxsynth.tokenize import Tokenizer

_USER, _ANSWER = "\x00ctxsynth-user\x00", "\x00ctxsynth-answer\x00"


@dataclass(frozen=True)
class ChatFrame:
    """The text the chat template puts around the user and assistant contents."""

    before_user: str
    between: str
    after_answer: str

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> ChatFrame:
        text = tokenizer.render_chat([{"role": "user", "content": _USER}, {"role": "assistant", "content": _ANSWER}])
        if text.count(_USER) != 1 or text.count(_ANSWER) != 1 or text.index(_USER) > text.index(_ANSWER):
            raise ConfigError(f"chat template of {tokenizer.name} does not render contents verbatim")
        before, rest = text.split(_USER)
        between, after = rest.split(_ANSWER)
        return cls(before, between, after)


@dataclass(frozen=True)
class Layout:
    """Documents in slot order inside a frame; `head`/`tail` hold everything before/after them."""

    head: str  # chat prefix + template head
    docs: Sequence[Doc]
    prefixes: Sequence[str]  # per slot, e.g. "Document 3:\n"
    joiner: str
    tail: str  # template tail + chat turn switch + answer + chat end
    answer_offset: int  # where the answer starts inside `tail`
    gold_slot: int
    gold_slots: tuple[int, ...] = ()  # every gold slot when there are several (multi-document samples)

    def golds(self) -> tuple[int, ...]:
        return self.gold_slots or (self.gold_slot,)

    def pieces(self) -> list[str]:
        out = [self.head]
        for i, doc in enumerate(self.docs):
            out += [self.joiner if i else "", self.prefixes[i], doc.text]
        out.append(self.tail)
        return out

    def render(self) -> str:
        return "".join(self.pieces())

    def gold_chars(self, slot: int | None = None) -> tuple[int, int]:
        """[start, end) of the gold document (or of the document in `slot`) in the rendered text."""
        slot = self.gold_slot if slot is None else slot
        start = len(self.head)
        for i, doc in enumerate(self.docs):
            start += len(self.joiner if i else "") + len(self.prefixes[i])
            if i == slot:
                return start, start + len(doc.text)
            start += len(doc.text)
        raise IndexError("gold_slot outside the layout")


@dataclass(frozen=True)
class Count:
    """Token counts of a rendered sample; spans are [start, end) token indexes."""

    total: int
    prompt: int  # tokens before the assistant's content
    gold_span: tuple[int, int]
    gold_spans: tuple[tuple[int, int], ...] = ()  # one span per gold slot, in slot order


def _before(offsets: Sequence[tuple[int, int]], char: int) -> int:
    """Tokens that end at or before `char`."""
    return sum(1 for _, end in offsets if end <= char)


def _starting_before(offsets: Sequence[tuple[int, int]], char: int) -> int:
    return sum(1 for start, _ in offsets if start < char)


def full_count(tokenizer: Tokenizer, layout: Layout) -> Count:
    """Counts from one tokenization of the whole render (the reference)."""
    text = layout.render()
    offsets = tokenizer.offsets_batch([text])[0]
    spans = []
    for slot in layout.golds():
        gold_start, gold_end = layout.gold_chars(slot)
        spans.append((_before(offsets, gold_start), _starting_before(offsets, gold_end)))
    answer = len(text) - len(layout.tail) + layout.answer_offset
    first = spans[layout.golds().index(layout.gold_slot)]
    return Count(len(offsets), _before(offsets, answer), first, tuple(spans))


def fast_count(tokenizer: Tokenizer, layout: Layout) -> Count:
    """Counts from cached middles plus the bridging strings (one batched tokenizer call)."""
    strings: list[str] = []
    middles_before: list[int] = []
    marks: dict[str, tuple[int, int]] = {}
    current: list[str] = [layout.head]
    golds = layout.golds()
    length, middles = len(layout.head), 0
    for i, doc in enumerate(layout.docs):
        lead = (layout.joiner if i else "") + layout.prefixes[i]
        current.append(lead)
        length += len(lead)
        if i in golds:
            marks[f"gold_start_{i}"] = (len(strings), length)
        if doc.has_cuts:
            current.append(doc.head)
            strings.append("".join(current))
            middles_before.append(middles)
            middles += doc.middle
            current, length = [doc.tail], len(doc.tail)
        else:
            current.append(doc.text)
            length += len(doc.text)
        if i in golds:
            marks[f"gold_end_{i}"] = (len(strings), length)
    marks["answer"] = (len(strings), length + layout.answer_offset)
    current.append(layout.tail)
    strings.append("".join(current))
    middles_before.append(middles)
    offsets = tokenizer.offsets_batch(strings)
    bases, running = [], 0
    for index, found in enumerate(offsets):
        bases.append(running + middles_before[index])
        running += len(found)

    def at(name: str, starting: bool) -> int:
        index, char = marks[name]
        counter = _starting_before if starting else _before
        return bases[index] + counter(offsets[index], char)

    total = running + middles
    spans = tuple((at(f"gold_start_{i}", False), at(f"gold_end_{i}", True)) for i in golds)
    return Count(total, at("answer", False), spans[golds.index(layout.gold_slot)], spans)
