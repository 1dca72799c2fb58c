"""Typed training configuration: one YAML file maps onto `TrainConfig` (keys = field names).

The defaults follow the paper's recipe (PAPER.md section 4): full fine-tuning, AdamW (0.9, 0.95),
lr 2e-5 with cosine decay and 3% warm-up, 2 epochs, one packed sequence per device, LongAlign
per-sequence loss weighting, loss on answer tokens only, bf16 and gradient checkpointing. What
differs by hardware (pack length, model) is set in configs/train/*.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

LossNorm = Literal["token", "sequence"]


@dataclass
class DataConfig:
    """Where the training rows come from: export folders (runs/<name>/export/<format>) or JSONL /
    Parquet files of any ctxsynth export shape (messages, prompt/completion, sharegpt; train.sources)."""

    train_files: list[str] = field(default_factory=list)
    # general SFT data of the same shape, mixed in (the paper mixes ShareGPT or UltraChat)
    general_files: list[str] = field(default_factory=list)
    general_max_samples: int | None = None
    max_samples: int | None = None
    # samples longer than the pack length are dropped (and counted), never silently cut
    max_length: int = 32768
    packing: bool = True
    shuffle_seed: int = 0


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class NiahConfig:
    """A small needle-in-a-haystack grid run at each checkpoint through a callable (see callbacks.py)."""

    enabled: bool = False
    lengths: list[int] = field(default_factory=lambda: [4096, 8192])
    depths: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    samples_per_cell: int = 2


@dataclass
class TrainConfig:
    """Everything `train()` needs. Unknown YAML keys are errors (see ctxsynth.config)."""

    model: str = "smollm2"
    tokenizer: str | None = None  # defaults to the model folder
    # weights as loaded; with bf16=True and float32 weights, training is mixed precision with fp32
    # master weights (DeepSpeed / FSDP mixed precision do the same on several GPUs)
    model_dtype: Literal["float32", "bfloat16"] = "float32"
    output_dir: str = "runs/train"
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    niah: NiahConfig = field(default_factory=NiahConfig)
    # "token": mean over all answer tokens of the global batch (TRL's); "sequence": LongAlign, each
    # packed sample counts equally, whatever its answer length
    loss_normalization: LossNorm = "sequence"
    # "auto": varlen flash kernel on CUDA when torch has it, else sdpa with a position_ids document mask
    attn_implementation: str = "auto"
    # regional torch.compile: each decoder layer compiled (one graph shared by all layers, dynamic in
    # the pack length), fusing norms, rotary, SwiGLU and residual adds. Costs a minute or so of
    # compilation at the first steps; pays off on GPUs for long runs (docs/results/train_throughput.md)
    compile: bool = False
    # which assistant turns carry the loss: "last" (the final answer: ctxsynth's samples are single-turn)
    # or "all" (every assistant turn of a multi-turn conversation, as LongAlign trains)
    loss_turns: Literal["last", "all"] = "last"
    # the token that closes an assistant turn; None = the tokenizer's eos token
    end_of_turn_token: str | None = None
    # passed into the model config: e.g. {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8192}
    rope_scaling: dict[str, Any] | None = None
    max_position_embeddings: int | None = None
    learning_rate: float = 2e-5
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    max_grad_norm: float = 1.0
    num_train_epochs: float = 2.0
    max_steps: int = -1
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = True
    bf16: bool = True
    seed: int = 42
    logging_steps: int = 1
    save_steps: int = 500
    save_total_limit: int | None = 2
    # True = the latest checkpoint in output_dir, or a checkpoint folder path
    resume_from_checkpoint: bool | str = False
    report_to: list[str] = field(default_factory=list)
    dataloader_num_workers: int = 0

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        from ctxsynth import config as config_loader

        return config_loader.load(cls, Path(path), overrides or [])


@dataclass
class RunTrainConfig(TrainConfig):
    """`train:` in a run config: a TrainConfig; data and output default to this run's (ctxsynth.train.stage)."""

    output_dir: str = ""  # always <run>/train in a run (its checkpoints are the stage's to resume or discard)
    export_format: str = "trl_messages"  # which of this run's exports to train on (data.train_files empty)
