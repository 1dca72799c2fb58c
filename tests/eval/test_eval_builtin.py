"""Built-in evaluation sets: real data, exact lengths, recorded depth, never from the seed partition."""

from __future__ import annotations

import re

from ctxsynth.eval import builtin
from ctxsynth.eval.partition import HELDOUT_RULE, is_heldout
from ctxsynth.tokenize import load_tokenizer


def test_partition_rule_is_sha1_parity_and_splits_about_evenly() -> None:
    assert is_heldout("a") is (int("86f7e437faa5a7fce15d1ddcb9eaeaea377667b8", 16) % 2 == 1)
    share = sum(is_heldout(f"id-{i}") for i in range(2000)) / 2000
    assert 0.45 < share < 0.55
    assert "sha1" in HELDOUT_RULE


def test_hotpotqa_items_are_heldout_real_ten_passage_contexts() -> None:
    items = builtin.hotpotqa_items(20, seed=1)
    assert len(items) == 20 and len({i.id for i in items}) == 20
    records = {r["_id"]: r for r in builtin._hotpotqa()}
    seed_evidence = {t for r in records.values() if not is_heldout(r["_id"]) for t, _ in r["supporting_facts"]}
    for item in items:
        record = records[item.meta["question_id"]]
        assert is_heldout(record["_id"])
        assert not {t for t, _ in record["supporting_facts"]} & seed_evidence
        assert len(re.findall(r"^Passage \d+:$", item.prompt, flags=re.M)) == len(record["context"]) == 10
        assert item.answers == [record["answer"]] and item.metric == "qa_f1"
        assert "never overlap" in item.meta["heldout"]
    assert [i.id for i in builtin.hotpotqa_items(20, seed=1)] == [i.id for i in items]


def test_squad_items_hit_exact_lengths_with_the_gold_paragraph_once_at_increasing_depth() -> None:
    tok = load_tokenizer("smollm2")
    items = builtin.squad_items(2, lengths=[400, 900], depths=[0.0, 0.5, 1.0], tokenizer=tok, seed=3)
    assert len(items) == 12
    paragraphs = {q["id"]: q for q in builtin.heldout_squad()}
    for item in items:
        q = paragraphs[item.meta["question_id"]]
        assert is_heldout(q["title"])
        n = len(tok.encode(item.prompt))
        assert n == item.meta["length"] and item.meta["target_length"] - 2 <= n <= item.meta["target_length"]
        assert item.prompt.count(q["context"]) == 1
        assert item.prompt.index(q["context"]) == item.meta["gold_char_start"]
    for qid in {i.meta["question_id"] for i in items}:
        depths = [i.meta["gold_depth"] for i in items if i.meta["question_id"] == qid and i.meta["target_length"] == 900]
        assert depths == sorted(depths) and depths[0] < 0.1 and depths[-1] > 0.5


def test_squad_wiki_filler_never_uses_the_questions_own_article() -> None:
    tok = load_tokenizer("smollm2")
    items = builtin.squad_items(2, lengths=[600], depths=[0.5], tokenizer=tok, filler="wiki", seed=0)
    extracts = dict(builtin._wiki_extracts())
    for item in items:
        own = extracts.get(item.meta["title"])
        assert own is None or own not in item.prompt
        assert item.meta["filler"] == "wiki"
