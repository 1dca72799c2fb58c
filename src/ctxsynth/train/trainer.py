"""`PackedSFTTrainer`: TRL's SFTTrainer with answer-only, pack-aware loss normalisation.

It keeps everything of SFTTrainer (PEFT wrapping, gradient checkpointing, accelerate, FSDP and
DeepSpeed, checkpoints) and changes the loss only:

- the LM head runs on answer positions only, in tiles, through TRL's fused head (no
  sequence x vocab logits), and computes log-probabilities alone (TRL's default also computes the
  entropy and top-1 accuracy over the logits for its metrics);
- the normaliser is counted over the whole optimizer step (see loss.py), in tokens or in samples.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from trl import SFTTrainer
from trl.trainer.utils import add_fused_lm_head

from ctxsynth.errors import ConfigError
from ctxsynth.train.loss import count_targets, reduce_loss

log = logging.getLogger(__name__)


class PackedSFTTrainer(SFTTrainer):
    """SFTTrainer for padding-free packed batches from PackedCollator."""

    def __init__(self, *args: Any, loss_normalization: str = "sequence", record_batches: bool = False, **kwargs: Any):
        if loss_normalization not in ("token", "sequence"):
            raise ConfigError(f"loss_normalization must be 'token' or 'sequence', got {loss_normalization!r}")
        super().__init__(*args, **kwargs)
        self.loss_normalization = loss_normalization
        # re-patch the fused head to compute log-probabilities only (no entropy / accuracy tiles)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        add_fused_lm_head(base, outputs=("log_probs",))
        # the loss is divided by a count over the whole accumulated step: no further division
        self.loss_is_scaled_for_ga = True
        self.record_batches = record_batches
        self.batch_fingerprints: list[int] = []

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        if not batch_samples or "labels" not in batch_samples[0]:
            return None
        count = sum(count_targets(b["labels"], b["position_ids"], self.loss_normalization) for b in batch_samples)
        count = torch.as_tensor(count, device=device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return count

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        if self.record_batches and model.training:
            self.batch_fingerprints.append(hash(tuple(inputs["input_ids"][0, :64].tolist())))
        labels, position_ids = inputs["labels"], inputs["position_ids"]
        scale_for_ranks = num_items_in_batch is not None and self.args.average_tokens_across_devices
        if num_items_in_batch is None:  # evaluation: normalise within the micro-batch
            num_items_in_batch = count_targets(labels, position_ids, self.loss_normalization)
        outputs = model(**inputs, use_cache=False, fused_lm_head=True)
        nll = -outputs.log_probs
        denominator = torch.as_tensor(num_items_in_batch, device=nll.device).clamp(min=1)
        loss = reduce_loss(nll, outputs.label_mask, position_ids.to(nll.device), self.loss_normalization, denominator)
        if scale_for_ranks:
            # the count spans all ranks and DDP averages gradients: undo the average
            loss = loss * self.accelerator.num_processes
        if model.training:
            n_tokens = self.accelerator.gather_for_metrics(torch.tensor(labels.numel(), device=nll.device)).sum()
            self._total_train_tokens += int(n_tokens.item())
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss
