"""Answer-only labels, best-fit packing and padding-free collation."""

from __future__ import annotations

import random

from ctxsynth.train.collator import PackedCollator
from ctxsynth.train.data import IGNORE_INDEX, end_of_turn_id, pack_best_fit, tokenize_chat


def test_labels_cover_exactly_answer_and_end_of_turn(smol_tokenizer):
    """Labels are the assistant answer's tokens plus <|im_end|>; prompt, template and trailing newline are -100."""
    answer = "Paris is the capital, 42 km away."
    messages = [{"role": "user", "content": "Where? Context: a long document."}, {"role": "assistant", "content": answer}]
    eot = end_of_turn_id(smol_tokenizer)
    sample = tokenize_chat(messages, smol_tokenizer, eot)
    labelled = [t for t in sample.labels if t != IGNORE_INDEX]
    assert labelled == smol_tokenizer(answer, add_special_tokens=False)["input_ids"] + [eot]
    first = sample.labels.index(labelled[0])
    assert all(t == IGNORE_INDEX for t in sample.labels[:first])
    assert sample.labels[first:] == sample.input_ids[first:]  # contiguous, ends with the end-of-turn token
    assert smol_tokenizer.decode(sample.input_ids[:first]).endswith("<|im_start|>assistant\n")


def test_best_fit_packing_is_complete_bounded_and_deterministic():
    """Every item lands in exactly one bin, no bin overflows, and the same input gives the same bins."""
    rng = random.Random(3)
    lengths = [rng.randint(1, 900) for _ in range(300)]
    bins = pack_best_fit(lengths, 1024)
    assert sorted(i for b in bins for i in b) == list(range(300))
    assert all(sum(lengths[i] for i in b) <= 1024 for b in bins)
    assert bins == pack_best_fit(lengths, 1024)
    assert len(bins) <= 1.1 * sum(lengths) / 1024 + 1  # length-aware: nearly full bins


def test_collator_restarts_positions_and_masks_sample_starts():
    """Positions restart at 0 per sample, no attention_mask is sent, and a sample's first token is never a target."""
    rows = [{"input_ids": [5, 6, 7, 8, 9], "labels": [5, 6, 7, 8, 9], "seq_lengths": [2, 3]}, {"input_ids": [1, 2], "labels": [1, 2]}]
    batch = PackedCollator()(rows)
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, IGNORE_INDEX, 8, 9, IGNORE_INDEX, 2]]
    assert batch["cu_seq_lens_q"].tolist() == [0, 2, 5, 7] and batch["max_length_q"] == 3
    assert "attention_mask" not in batch


def test_all_turns_labels_every_assistant_answer_and_nothing_else(smol_tokenizer):
    """loss_turns=all: both answers (+ <|im_end|>) are labelled, user turns and markup are not; the ids
    are the whole rendered conversation up to the last end-of-turn token."""
    from ctxsynth.train.data import tokenize_chat_all_turns

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Italy?"},
                {"role": "assistant", "content": "Rome, 1871."}]
    eot = end_of_turn_id(smol_tokenizer)
    sample = tokenize_chat_all_turns(messages, smol_tokenizer, eot)
    spans, current = [], []
    for token, label in zip(sample.input_ids, sample.labels):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    spans.append(current)
    assert [smol_tokenizer.decode(s) for s in spans] == ["Paris.<|im_end|>", "Rome, 1871.<|im_end|>"]
    full = smol_tokenizer.apply_chat_template(messages, tokenize=False)
    assert smol_tokenizer.decode(sample.input_ids) == full[: full.rindex("<|im_end|>") + len("<|im_end|>")]
    # one assistant turn: the same ids and labels as the last-turn tokenizer
    one = messages[:3]
    last = tokenize_chat(one, smol_tokenizer, eot)
    every = tokenize_chat_all_turns(one, smol_tokenizer, eot)
    assert (every.input_ids, every.labels) == (last.input_ids, last.labels)
