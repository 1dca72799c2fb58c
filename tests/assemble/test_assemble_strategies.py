"""Determinism across shards, every distractor strategy, leak checks, templates and rejections."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import cached_assembler, make_pool
from ctxsynth.assemble import AssembleConfig, Assembler
from ctxsynth.assemble.corpus import load_corpus
from ctxsynth.records import Rejected, Sample, Seed, Synthesized, to_dict

POOL = make_pool()


def _bytes(samples: list[Sample | Rejected]) -> bytes:
    rows = sorted((to_dict(s) for s in samples), key=lambda row: row["id"])
    return "\n".join(json.dumps(row, sort_keys=True) for row in rows).encode()


@pytest.mark.parametrize("options", [{"target_tokens": [900, 1500, 2500]}, {"target_tokens": [800, 3000], "target_sampling": "uniform", "position": "middle"}, {}])
def test_same_seed_gives_same_bytes_with_one_or_four_shards(options: dict) -> None:
    config = AssembleConfig(**options)
    whole = Assembler(config, POOL, 7)
    one = [whole.assemble(r) for r in POOL]
    shuffled_pool = random.Random(3).sample(POOL, len(POOL))
    four: list[Sample | Rejected] = []
    for shard in range(4):
        worker = Assembler(config, shuffled_pool, 7)  # each shard builds its own indexes
        records = POOL[shard::4]
        four += [worker.assemble(r) for r in reversed(records)]
    assert _bytes(one) == _bytes(four)
    other_seed = [Assembler(config, POOL, 8).assemble(r) for r in POOL]
    assert _bytes(one) != _bytes(other_seed)


def test_leaking_distractors_are_never_used_and_are_counted() -> None:
    pool = make_pool()
    answer = pool[0].seed.answers[0]
    for record in pool[2:12:2]:  # same task as record 0
        record.context += f" Some say the code is {answer}."
    assembler = Assembler(AssembleConfig(n_documents=8), pool, 0)
    sample = assembler.assemble(pool[0])
    assert isinstance(sample, Sample)
    leaking = {r.id for r in pool[2:12:2]}
    assert not leaking & set(sample.distractor_ids)
    assert sample.meta["leaks_skipped"] >= 1
    duplicate = Synthesized(id="rec999", task=pool[0].task, seed=pool[0].seed, context=pool[0].context,
                            provenance={}, verdicts={})
    with_copy = Assembler(AssembleConfig(n_documents=8, leak_exempt=[answer]), [*pool, duplicate], 0)
    sample = with_copy.assemble(pool[0])
    assert "rec999" not in sample.distractor_ids


@pytest.mark.parametrize("strategy", ["any_task", "bm25", pytest.param("embedding", marks=pytest.mark.slow)])
def test_each_pool_strategy_fills_the_budget(strategy: str) -> None:
    assembler = cached_assembler(0, target_tokens=2000, distractors=strategy)
    sample = assembler.assemble(POOL[0])
    assert isinstance(sample, Sample) and 0.98 * 2000 <= sample.tokens["total"] <= 2000
    assert sample.distractor_strategy == strategy and sample.distractor_ids


def test_retrieval_strategies_rank_same_topic_documents_first() -> None:
    topic = "The lighthouse keeper polished the brass lamp of the lighthouse on the rocky island coast."
    pool = [*make_pool(30)]
    for i in (5, 9, 13):
        pool[i].context = f"{topic} Storms and ships near the lighthouse island, record {i}."
    gold = Synthesized(id="gold", task="hotpotqa", context=f"{topic} The keeper wrote the code LX-77 in the log.",
                       seed=Seed(id="g", task="hotpotqa", instruction="Which code?", answer="LX-77"),
                       provenance={}, verdicts={})
    for strategy in ("bm25", "embedding"):
        sample = Assembler(AssembleConfig(n_documents=4, distractors=strategy), [*pool, gold], 0).assemble(gold)
        assert set(sample.distractor_ids) == {"rec005", "rec009", "rec013"}, strategy


def test_corpus_folder_strategy_uses_the_users_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(" ".join(f"Alpha sentence number {i} about rivers." for i in range(200)))
    rows = [{"text": " ".join(f"Beta line {j} of row {i} on mountains." for j in range(40))} for i in range(5)]
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    config = AssembleConfig(target_tokens=1500, distractors=f"corpus:{tmp_path}", corpus_chunk_words=150)
    sample = Assembler(config, POOL, 0).assemble(POOL[1])
    assert isinstance(sample, Sample) and sample.tokens["total"] <= 1500
    assert all(d.startswith("corpus:") for d in sample.distractor_ids)


def test_ranked_corpus_strategies_pick_hard_negatives_from_the_corpus(tmp_path: Path) -> None:
    """embedding:<corpus> and bm25:<corpus> rank an external corpus (not the synthetic pool) by
    similarity to the gold: the one corpus document on the gold's topic comes first."""
    topic = "The lighthouse keeper polished the brass lamp of the lighthouse on the rocky island coast."
    (tmp_path / "near.txt").write_text(f"{topic} Storms and ships passed the lighthouse island all winter.")
    for name, subject in (("a", "rivers and valleys"), ("b", "mountain goats"), ("c", "tax law reform")):
        (tmp_path / f"{name}.txt").write_text(" ".join(f"A sentence {i} about {subject}." for i in range(30)))
    gold = Synthesized(id="gold", task="hotpotqa", context=f"{topic} The keeper wrote the code LX-77 in the log.",
                       seed=Seed(id="g", task="hotpotqa", instruction="Which code?", answer="LX-77"),
                       provenance={}, verdicts={})
    for kind in ("bm25", "embedding"):
        config = AssembleConfig(n_documents=2, distractors=f"{kind}:{tmp_path}", corpus_chunk_words=400)
        sample = Assembler(config, [*make_pool(10), gold], 0).assemble(gold)
        assert isinstance(sample, Sample) and sample.distractor_ids == ["corpus:near.txt:0"], (kind, sample)


def test_builtin_corpora_chunk_real_text_to_about_the_requested_size() -> None:
    for name in ("essays", "wiki"):
        docs = load_corpus(name, 700)
        assert len(docs) > 500
        lengths = sorted(len(t.split()) for _, t in docs[:200])
        assert 600 <= lengths[len(lengths) // 2] <= 900, (name, lengths[len(lengths) // 2])


@pytest.mark.slow
def test_builtin_essay_corpus_strategy_assembles() -> None:
    sample = Assembler(AssembleConfig(target_tokens=4000, distractors="corpus:essays"), POOL, 0).assemble(POOL[0])
    assert isinstance(sample, Sample) and sample.distractor_ids[0].startswith("corpus:essays:")


def test_user_template_files_and_numbered_separators(tmp_path: Path) -> None:
    longbench_style = tmp_path / "dataset2prompt.json"
    longbench_style.write_text(json.dumps({"hotpotqa": "PASSAGES {x}:\n{context}\n\nQ: {input}\nA:"}))
    sample = Assembler(AssembleConfig(template=str(longbench_style), separator="numbered", n_documents=3), POOL, 0).assemble(POOL[0])
    user = sample.messages[0]["content"]
    assert user.startswith("PASSAGES {x}:\nDocument 1:\n") and "Document 3:\n" in user
    assert user.endswith(f"Q: {POOL[0].seed.instruction}\nA:") and sample.template == "dataset2prompt.json:hotpotqa"
    single = tmp_path / "mine.txt"
    single.write_text("{context}\n---\n{input}")
    sample = Assembler(AssembleConfig(template=str(single), n_documents=2), POOL, 0).assemble(POOL[0])
    assert sample.messages[0]["content"].endswith(f"\n---\n{POOL[0].seed.instruction}") and sample.template == "mine.txt"
    builtin = Assembler(AssembleConfig(n_documents=2), POOL, 0).assemble(POOL[1])
    assert builtin.template == "narrativeqa" and "Story:" in builtin.messages[0]["content"]


def test_impossible_requests_are_rejected_with_a_reason() -> None:
    too_small = Assembler(AssembleConfig(target_tokens=100), POOL, 0).assemble(POOL[0])
    assert isinstance(too_small, Rejected) and too_small.reason == "gold_exceeds_budget"
    too_many = Assembler(AssembleConfig(n_documents=50), POOL, 0).assemble(POOL[0])
    assert isinstance(too_many, Rejected) and too_many.reason == "too_few_distractors"
    exhausted = Assembler(AssembleConfig(target_tokens=60000, trim_to_fill=False), POOL, 0).assemble(POOL[0])
    assert isinstance(exhausted, Rejected) and exhausted.reason == "pool_exhausted"


def test_config_rejects_bad_values() -> None:
    for bad in ({"distractors": "nearest"}, {"target_tokens": [5], "target_sampling": "uniform"}, {"depth": 2.0}):
        with pytest.raises(ValueError):
            AssembleConfig(**bad)
