"""Loss normalisation over packed batches: token mean or LongAlign per-sequence weighting.

Both reduce per-token negative log-likelihoods (zero where the label is -100) to one number, but
divide by a count taken over the whole optimizer step (all gradient-accumulation micro-batches and,
under data parallelism, all ranks), so a step's gradient does not depend on how its samples were
split into packs:

- "token": sum of all answer-token losses / number of answer tokens (TRL's default).
- "sequence" (LongAlign): each sample's mean answer-token loss, summed, / number of samples. A
  sample with a 3-token answer weighs as much as one with a 300-token answer.

Sample boundaries come from position_ids (0 starts a sample), as in the collator.
"""

from __future__ import annotations

import torch

from ctxsynth.train.data import IGNORE_INDEX


def sample_index(position_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) position_ids -> (B, T) index of the sample each token belongs to, counted over the batch."""
    starts = (position_ids == 0).reshape(-1).long()
    return (torch.cumsum(starts, 0) - 1).clamp(min=0).view_as(position_ids)


def count_targets(labels: torch.Tensor, position_ids: torch.Tensor, mode: str) -> torch.Tensor:
    """The normaliser of one micro-batch: answer tokens ("token") or samples with answer tokens ("sequence")."""
    mask = labels[:, 1:] != IGNORE_INDEX
    if mode == "token":
        return mask.sum()
    seq = sample_index(position_ids)[:, 1:]
    return torch.unique(seq[mask]).numel() * torch.ones((), dtype=torch.long, device=labels.device)


def reduce_loss(
    nll: torch.Tensor, mask: torch.Tensor, position_ids: torch.Tensor, mode: str, denominator: torch.Tensor | float
) -> torch.Tensor:
    """Sum of this micro-batch's share of the step loss.

    nll and mask are (B, T-1), aligned with the shifted labels (position t scores token t+1).
    """
    if mode == "token":
        return (nll * mask).sum() / denominator
    if mode != "sequence":
        raise ValueError(f"unknown loss normalisation {mode!r}: use 'token' or 'sequence'")
    seq = sample_index(position_ids)[:, 1:].reshape(-1)
    flat_mask = mask.reshape(-1).to(nll.dtype)
    n_seq = seq.numel() + 1  # an upper bound on the sample count, without a device sync
    sums = torch.zeros(n_seq, dtype=nll.dtype, device=nll.device).index_add(0, seq, nll.reshape(-1) * flat_mask)
    counts = torch.zeros(n_seq, dtype=nll.dtype, device=nll.device).index_add(0, seq, flat_mask)
    means = sums / counts.clamp(min=1)
    return means.sum() / denominator
