"""Long-context SFT on ctxsynth exports: packing without cross-contamination, answer-only loss.

`train(TrainConfig)` fine-tunes a Hugging Face causal LM (full or LoRA) on TRL's SFTTrainer. See
docs/training.md for the recipe, the attention implementations that isolate packed samples, and
multi-GPU launch commands.
"""

from ctxsynth.train.config import DataConfig, LoraConfig, NiahConfig, TrainConfig
from ctxsynth.train.recipe import build_trainer, train

__all__ = ["DataConfig", "LoraConfig", "NiahConfig", "TrainConfig", "build_trainer", "train"]
