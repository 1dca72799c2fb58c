"""Multi-document samples: every gold document appears once, intact, in distinct non-adjacent slots
(when distractors allow), with its character and token spans recorded exactly; the sample's own
documents never serve as its distractors; the leak check still screens distractors."""

from __future__ import annotations

import pytest

from ctxsynth.assemble import AssembleConfig, Assembler
from ctxsynth.assemble.corpus import load_corpus
from ctxsynth.records import Sample, Seed, Synthesized
from ctxsynth.tokenize import load_tokenizer


def multi_pool(n: int = 24, per_record: int = 3) -> list[Synthesized]:
    chunks = [text for _, text in load_corpus("essays", 80)[: n * per_record]]
    pool = []
    for i in range(n):
        docs = chunks[i * per_record : (i + 1) * per_record]
        k = 2 + i % (per_record - 1)  # 2 or 3 gold documents
        docs = docs[:k]
        docs[-1] += f" The code is zeta{i:03d}code."
        seed = Seed(id=f"s{i}", task="hotpotqa", instruction=f"What is code {i}?", answer=f"zeta{i:03d}code")
        pool.append(Synthesized(f"r{i:02d}", "hotpotqa", seed, "\n\n".join(docs), {}, {}, documents=docs))
    return pool


def _check(sample: Sample, record: Synthesized, tokenizer_name: str = "smollm2") -> None:
    user = sample.messages[0]["content"]
    slots = sample.gold_indices
    assert len(slots) == len(record.documents) and sample.gold_index == slots[0]
    assert all(b - a > 1 for a, b in zip(slots, slots[1:], strict=False))
    for doc, (start, end) in zip(record.documents, sample.meta["gold_char_spans"], strict=True):
        assert user.count(doc) == 1 and user[start:end] == doc
    assert not any(d.startswith(record.id + "#") for d in sample.distractor_ids)
    assert len(sample.distractor_ids) == sample.n_documents - len(slots)
    tokenizer = load_tokenizer(tokenizer_name)
    rendered = tokenizer.render_chat(sample.messages)
    offsets = tokenizer.offsets_batch([rendered])[0]
    for doc, (t0, t1) in zip(record.documents, sample.meta["gold_token_spans"], strict=True):
        covered = rendered[offsets[t0][0] : offsets[t1 - 1][1]]
        assert doc.strip() in covered and len(covered) < len(doc) + 8


@pytest.mark.parametrize("options", [{"n_documents": 8}, {"target_tokens": 2048}, {"target_tokens": 1536, "verify": "full"}])
def test_gold_documents_are_placed_apart_once_and_intact(options: dict) -> None:
    pool = multi_pool()
    assembler = Assembler(AssembleConfig(**options), pool, 5)
    for record in pool[:8]:
        sample = assembler.assemble(record)
        assert isinstance(sample, Sample), sample
        _check(sample, record)
        if "target_tokens" in options:
            assert sample.tokens["total"] <= options["target_tokens"]


def test_fast_and_full_counting_agree_on_every_gold_span() -> None:
    pool = multi_pool()
    fast = Assembler(AssembleConfig(target_tokens=2048, verify="fast"), pool, 1)
    full = Assembler(AssembleConfig(target_tokens=2048, verify="full"), pool, 1)
    for record in pool[:6]:
        a, b = fast.assemble(record), full.assemble(record)
        assert a.meta["gold_token_spans"] == b.meta["gold_token_spans"] and a.tokens == b.tokens


def test_too_few_distractors_still_places_every_gold_once() -> None:
    pool = multi_pool(n=3)
    sample = Assembler(AssembleConfig(n_documents=3), pool, 0).assemble(pool[1])  # 3 golds, no distractor
    assert isinstance(sample, Sample) and sample.gold_indices == [0, 1, 2]
    spans = sample.meta["gold_char_spans"]
    assert [sample.messages[0]["content"][s:e] for s, e in spans] == pool[1].documents


def test_leaking_documents_of_other_records_are_screened_out() -> None:
    pool = multi_pool()
    leak = pool[3]
    pool[5].documents[0] += f" Also {leak.seed.answer} appears here."
    pool[5].context = "\n\n".join(pool[5].documents)
    sample = Assembler(AssembleConfig(n_documents=20), pool, 2).assemble(leak)
    assert "r05#1" not in sample.distractor_ids and sample.meta["leaks_skipped"] >= 1
