"""The loss of a packed batch equals the per-sample losses combined, in both normalisation modes.

Tolerance: 1e-5 relative, float32 on CPU. A contaminated pack (an all-ones attention_mask) is shown
to miss that tolerance, so the check can fail.
"""

from __future__ import annotations

import pytest
import torch

from ctxsynth.train import TrainConfig, build_trainer
from ctxsynth.train.collator import PackedCollator
from ctxsynth.train.data import end_of_turn_id, tokenize_chat


def _samples(tokenizer):
    eot = end_of_turn_id(tokenizer)
    out = []
    for i, answer in enumerate(["Yes.", "The answer is 1234 and also 5678, as stated twice.", "No, it is 7."]):
        messages = [{"role": "user", "content": "text " * (10 + 15 * i) + f"question {i}?"}, {"role": "assistant", "content": answer}]
        out.append(tokenize_chat(messages, tokenizer, eot))
    return out


@pytest.mark.parametrize("mode", ["token", "sequence"])
@pytest.mark.parametrize("attn", ["sdpa", "ctxsynth_varlen"])
def test_packed_loss_equals_per_sample_losses(tiny_model_dir, smol_tokenizer, tmp_path, mode, attn):
    """token: sum of token losses / all tokens; sequence (LongAlign): mean of the samples' mean losses."""
    config = TrainConfig(model=str(tiny_model_dir), output_dir=str(tmp_path), bf16=False, attn_implementation=attn,
                         loss_normalization=mode, max_steps=1)
    samples = _samples(smol_tokenizer)
    rows = [{"input_ids": s.input_ids, "labels": s.labels, "seq_lengths": [len(s)]} for s in samples]
    trainer = build_trainer(config, tokenizer=smol_tokenizer, rows=rows)
    model = trainer.model.eval()
    collate = PackedCollator()
    with torch.no_grad():
        packed = trainer.compute_loss(model, collate([_concat(rows)])).item()
        alone = [trainer.compute_loss(model, collate([r])).item() for r in rows]
        contaminated = trainer.compute_loss(
            model, {**collate([_concat(rows)]), "attention_mask": torch.ones(1, sum(len(s) for s in samples), dtype=torch.long)}
        ).item()
    counts = [sum(1 for x in s.labels[1:] if x != -100) for s in samples]
    expected = sum(a * n for a, n in zip(alone, counts, strict=True)) / sum(counts) if mode == "token" else sum(alone) / len(alone)
    assert packed == pytest.approx(expected, rel=1e-5)
    if attn == "sdpa":
        assert contaminated != pytest.approx(expected, rel=1e-5)


def _concat(rows):
    return {"input_ids": sum((r["input_ids"] for r in rows), []), "labels": sum((r["labels"] for r in rows), []),
            "seq_lengths": [len(r["input_ids"]) for r in rows]}
