"""Trainer callbacks: a NIAH grid at each checkpoint, and the loss curve as a PNG.

The NIAH grid runs through a callable so that the training package does not depend on the
evaluation harness: `evaluate(model, tokenizer, niah_config) -> {metric: value}`. The evaluation
code (ctxsynth.eval) supplies it; the CLI wires the two together.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ctxsynth.train.attention import VARLEN
from ctxsynth.train.config import NiahConfig

log = logging.getLogger(__name__)

NiahEvaluate = Callable[[Any, Any, NiahConfig], dict[str, float]]


class NiahCallback(TrainerCallback):
    """After each checkpoint save: run `evaluate`, log its scores and write them into the checkpoint."""

    def __init__(self, evaluate: NiahEvaluate, config: NiahConfig) -> None:
        self.evaluate = evaluate
        self.config = config

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        model = kwargs["model"]
        tokenizer = kwargs.get("processing_class")
        # generation needs a masked kernel: the varlen one serves packed training only
        previous = getattr(model.config, "_attn_implementation", None)
        if previous == VARLEN:
            model.set_attn_implementation("sdpa")
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                scores = self.evaluate(model, tokenizer, self.config)
        finally:
            if previous == VARLEN:
                model.set_attn_implementation(VARLEN)
            model.train(was_training)
        entry = {"step": state.global_step, **{f"niah/{k}": float(v) for k, v in scores.items()}}
        state.log_history.append(entry)
        out = Path(args.output_dir) / f"checkpoint-{state.global_step}" / "niah.json"
        if out.parent.exists():
            out.write_text(json.dumps(entry, indent=2), encoding="utf-8")
        log.info("NIAH at step %d: %s", state.global_step, scores)


def write_loss_curve(log_history: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Plot training loss against step from a Trainer log history; None when nothing was logged."""
    points = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 50 else None)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (answer tokens)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
