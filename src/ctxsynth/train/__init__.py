"""Long-context SFT on ctxsynth exports: packing without cross-contamination, answer-only loss.

`train(TrainConfig)` fine-tunes a Hugging Face causal LM (full or LoRA) on TRL's SFTTrainer. See
docs/training.md for the recipe, the attention implementations that isolate packed samples, and
multi-GPU launch commands. The configs import without torch (a run config nests TrainConfig); the
recipe, and with it torch and trl, loads on first use of `train` or `build_trainer`.
"""

from typing import Any

from ctxsynth.train.config import DataConfig, LoraConfig, NiahConfig, TrainConfig

__all__ = ["DataConfig", "LoraConfig", "NiahConfig", "TrainConfig", "build_trainer", "train"]


def __getattr__(name: str) -> Any:
    if name in ("build_trainer", "train"):
        from ctxsynth.train import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'ctxsynth.train' has no attribute {name!r}")
