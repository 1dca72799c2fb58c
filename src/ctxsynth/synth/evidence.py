"""Evidence parts of a multi-hop seed: which facts each generated document must carry.

HotpotQA seeds (ctxsynth.seeds.builtin) keep the supporting facts as [title, sentence index] pairs
and every paragraph's sentences in `seed.meta`. The supporting sentences, in supporting-fact order,
are split into `n` contiguous groups along title boundaries when they allow it (one title, one
document), else by sentence count. Seeds without supporting facts have no parts: the prompt then
leaves the split to the generator, and only the union check applies.
"""

from __future__ import annotations

from typing import Any

from ctxsynth.eval.metrics import normalize_answer
from ctxsynth.records import Seed

MIN_DOCUMENTS, MAX_DOCUMENTS = 2, 4


def supporting_sentences(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, sentence) of each supporting fact that exists in the paragraphs, in fact order."""
    paragraphs = {p["title"]: p["sentences"] for p in meta.get("paragraphs", []) if "title" in p}
    out = []
    for title, index in meta.get("supporting_facts", []):
        sentences = paragraphs.get(title, [])
        if isinstance(index, int) and 0 <= index < len(sentences) and sentences[index].strip():
            out.append((title, sentences[index].strip()))
    return out


def document_count(seed: Seed, configured: int) -> int:
    """`configured` when set, else one document per supporting title, clamped to 2..4."""
    if configured:
        return configured
    titles = {title for title, _ in supporting_sentences(seed.meta)}
    return min(max(len(titles), MIN_DOCUMENTS), MAX_DOCUMENTS)


def evidence_parts(seed: Seed, n: int) -> list[str]:
    """n evidence texts (fewer when there are fewer supporting sentences; [] without any)."""
    facts = supporting_sentences(seed.meta)
    if len(facts) < 2:
        return []
    titles = list(dict.fromkeys(title for title, _ in facts))
    if len(titles) == n:
        return [" ".join(s for t, s in facts if t == title) for title in titles]
    n = min(n, len(facts))
    size, extra = divmod(len(facts), n)
    parts, start = [], 0
    for k in range(n):
        stop = start + size + (1 if k < extra else 0)
        parts.append(" ".join(s for _, s in facts[start:stop]))
        start = stop
    return parts


def content_words(text: str) -> list[str]:
    """Normalised words longer than three characters (names, numbers of 4+ digits, content words)."""
    words = [w for w in normalize_answer(text).split() if len(w) > 3]
    return list(dict.fromkeys(words)) or normalize_answer(text).split()


def recall(part: str, document: str) -> float:
    """Share of the part's content words that occur in the document."""
    words = content_words(part)
    if not words:
        return 1.0
    vocab = set(normalize_answer(document).split())
    return sum(w in vocab for w in words) / len(words)


def render_evidence(parts: list[str], n: int) -> str:
    if not parts:
        return (f"Decide which facts the question needs and give each of the {n} documents a different one "
                "of them, so that the question needs all documents together.")
    return "\n".join(f"Document {k} must state: {part}" for k, part in enumerate(parts, 1))
