"""Padding-free collation of packed rows into one flat sequence per batch.

All samples of the batch are laid end to end in a single row (no padding tokens). What keeps them
apart is `position_ids`, restarting at 0 for every sample: transformers derives a block-diagonal
causal mask from it for sdpa / eager / flex_attention, and the varlen kernel in attention.py reads
the same boundaries from `cu_seq_lens_q`. No `attention_mask` is emitted: with one, transformers
would build a plain causal mask and samples would see each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ctxsynth.train.data import IGNORE_INDEX


class PackedCollator:
    """Rows {input_ids, labels, seq_lengths} -> tensors for a padding-free forward."""

    def __init__(self, varlen_kwargs: bool = True) -> None:
        self.varlen_kwargs = varlen_kwargs

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        input_ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        lengths: list[int] = []
        for row in rows:
            seq_lengths = list(row.get("seq_lengths") or [len(row["input_ids"])])
            if sum(seq_lengths) != len(row["input_ids"]):
                raise ValueError("seq_lengths do not add up to the row length")
            row_labels = list(row["labels"])
            start = 0
            for n in seq_lengths:
                row_labels[start] = IGNORE_INDEX  # nothing predicts a sample's first token
                positions.extend(range(n))
                start += n
            input_ids.extend(row["input_ids"])
            labels.extend(row_labels)
            lengths.extend(seq_lengths)
        batch: dict[str, Any] = {
            "input_ids": torch.tensor([input_ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
        }
        if self.varlen_kwargs:
            cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
            cu[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int32), 0)
            batch["cu_seq_lens_q"] = batch["cu_seq_lens_k"] = cu
            batch["max_length_q"] = batch["max_length_k"] = max(lengths)
        return batch
