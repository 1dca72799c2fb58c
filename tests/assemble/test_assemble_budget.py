"""Invariants of assembled samples, checked against a full re-tokenization of the rendered chat."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import cached_assembler, make_pool
from ctxsynth.assemble import AssembleConfig, Assembler
from ctxsynth.eval.metrics import contains_normalized
from ctxsynth.records import Sample

POOL = make_pool()
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_sample(assembler: Assembler, sample: Sample, gold_text: str) -> None:
    tok = assembler.tokenizer
    text = tok.render_chat(sample.messages)
    offsets = tok.offsets_batch([text])[0]
    assert len(offsets) == sample.tokens["total"], "recorded total differs from a full re-tokenization"
    user = sample.messages[0]["content"]
    assert user.count(gold_text) == 1, "gold document must appear exactly once"
    start, end = sample.gold_char_span
    assert user[start:end] == gold_text, "gold char span must cover the intact gold document"
    prefix = text.index(user)
    first, last = sample.gold_token_span
    assert offsets[first][1] > prefix + start and offsets[first - 1][1] <= prefix + start
    assert offsets[last - 1][0] < prefix + end and offsets[last][0] >= prefix + end
    assert abs(sample.gold_depth - first / sample.tokens["prompt"]) < 1e-5
    answer_at = text.rindex(sample.messages[1]["content"])
    assert sum(1 for _, e in offsets if e <= answer_at) == sample.tokens["prompt"]
    docs = {r.id: r.context.strip() for r in POOL}
    for doc_id in sample.distractor_ids:
        distractor = docs[doc_id]
        assert not any(contains_normalized(distractor, a) for a in ([sample.answer] if isinstance(sample.answer, str) else sample.answer))


@SETTINGS
@given(
    target=st.integers(512, 3000),  # 20 same-task documents of ~170 tokens can fill 3k
    record=st.integers(0, len(POOL) - 1),
    separator=st.sampled_from(["none", "blank_line", "numbered"]),
    position=st.sampled_from(["uniform", "fixed", "grid", "middle"]),
    run_seed=st.integers(0, 3),
)
def test_token_target_is_never_exceeded_and_spans_match_render(
    target: int, record: int, separator: str, position: str, run_seed: int
) -> None:
    assembler = cached_assembler(run_seed, target_tokens=target, separator=separator, position=position)
    sample = assembler.assemble(POOL[record])
    assert isinstance(sample, Sample), sample
    assert sample.tokens["total"] <= target
    assert target - sample.tokens["total"] <= max(0.02 * target, max(sample.tokens["per_document"]))
    check_sample(assembler, sample, POOL[record].context.strip())


@SETTINGS
@given(target=st.integers(600, 3000), record=st.integers(0, len(POOL) - 1))
def test_tiktoken_encodings_fit_exactly(target: int, record: int) -> None:
    assembler = cached_assembler(0, target_tokens=target, tokenizer="tiktoken:cl100k_base")
    sample = assembler.assemble(POOL[record])
    assert isinstance(sample, Sample) and sample.tokens["total"] <= target
    assert assembler.count_method == "fast"
    check_sample(assembler, sample, POOL[record].context.strip())


def test_fast_count_equals_full_tokenization_for_many_samples() -> None:
    """The cached-count arithmetic agrees with one full tokenization (the heart of the speed-up)."""
    for spec in ("smollm2", "tiktoken:o200k_base"):
        assembler = cached_assembler(0, target_tokens=2048, tokenizer=spec, verify="fast")
        for record in POOL[:12]:
            sample = assembler.assemble(record)
            assert isinstance(sample, Sample)
            ids = assembler.tokenizer.encode(assembler.tokenizer.render_chat(sample.messages))
            assert sample.tokens["total"] == len(ids)


def test_paper_default_is_ten_documents_with_gold_in_a_uniform_slot() -> None:
    assembler = cached_assembler(0)
    samples = [assembler.assemble(r) for r in POOL]
    assert all(isinstance(s, Sample) and s.n_documents == 10 and len(s.distractor_ids) == 9 for s in samples)
    assert len({s.gold_index for s in samples}) >= 5, "uniform slots should spread over the 10 positions"
    by_id = {r.id: r.task for r in POOL}
    assert all(by_id[d] == s.task for s in samples for d in s.distractor_ids), "same-task distractors"
    check_sample(assembler, samples[0], POOL[0].context.strip())


def test_document_count_mode_with_a_cap_drops_whole_distractors_until_the_sample_fits() -> None:
    """max_total_tokens (count mode): no sample is over the cap, the gold stays intact and exact
    (check_sample), distractors are dropped whole, never cut, and the drops are counted."""
    free = [cached_assembler(0).assemble(r) for r in POOL[:12]]
    cap = sorted(s.tokens["total"] for s in free)[3]  # below most uncapped samples
    assembler = Assembler(AssembleConfig(max_total_tokens=cap), POOL, 0)
    samples = [assembler.assemble(r) for r in POOL[:12]]
    assert all(isinstance(s, Sample) and s.tokens["total"] <= cap for s in samples)
    assert any(s.n_documents < 10 for s in samples) and assembler.stats["capped_samples"] >= 8
    docs = {r.id: r.context.strip() for r in POOL}
    for s in samples:
        check_sample(assembler, s, docs[s.id])
        assert all(docs[d] in s.messages[0]["content"] for d in s.distractor_ids)  # whole documents
    for capped, uncapped in zip(samples, free, strict=True):  # the cap only removes, in the same order
        assert [d for d in uncapped.distractor_ids if d in capped.distractor_ids] == capped.distractor_ids


def test_a_cap_with_a_token_target_is_a_config_error() -> None:
    import pytest

    with pytest.raises(ValueError, match="max_total_tokens"):
        AssembleConfig(max_total_tokens=4096, target_tokens=2048)


def test_fixed_depth_lands_near_the_requested_depth() -> None:
    assembler = cached_assembler(0, target_tokens=4000, position="fixed", depth=0.5)
    depths = [s.gold_depth for s in (assembler.assemble(r) for r in POOL[:10]) if isinstance(s, Sample)]
    assert all(0.3 <= d <= 0.7 for d in depths), depths
