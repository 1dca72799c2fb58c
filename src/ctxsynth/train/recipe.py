"""The training recipe: config -> model, packed data, PackedSFTTrainer -> trained model + summary.

A thin script over TRL + PEFT + accelerate (STYLE.md 12). Launch it under `accelerate launch`
with configs/accelerate/*.yaml for FSDP or DeepSpeed ZeRO-3 on several GPUs (docs/training.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ctxsynth.errors import ConfigError
from ctxsynth.train import attention, data
from ctxsynth.train.callbacks import NiahCallback, NiahEvaluate, write_loss_curve
from ctxsynth.train.collator import PackedCollator
from ctxsynth.train.config import TrainConfig
from ctxsynth.train.trainer import PackedSFTTrainer

log = logging.getLogger(__name__)


def load_tokenizer(config: TrainConfig) -> Any:
    from transformers import AutoTokenizer

    from ctxsynth.models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(config.tokenizer or config.model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def model_config(config: TrainConfig, path: str) -> Any:
    """The model's config with RoPE scaling and the position limit passed through."""
    from transformers import AutoConfig

    model_cfg = AutoConfig.from_pretrained(path)
    if config.rope_scaling:
        current = getattr(model_cfg, "rope_parameters", None)
        if isinstance(current, dict):  # transformers >= 5 keeps theta and scaling together
            model_cfg.rope_parameters = {**current, **config.rope_scaling}
        else:
            model_cfg.rope_scaling = dict(config.rope_scaling)
    if config.max_position_embeddings:
        model_cfg.max_position_embeddings = config.max_position_embeddings
    return model_cfg


def load_model(config: TrainConfig) -> Any:
    from transformers import AutoModelForCausalLM

    from ctxsynth.models import resolve_model_path

    path = resolve_model_path(config.model)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[config.model_dtype]
    return AutoModelForCausalLM.from_pretrained(
        path, config=model_config(config, path), dtype=dtype, attn_implementation=attention.resolve(config.attn_implementation)
    )


def build_rows(config: TrainConfig, tokenizer: Any) -> tuple[list[dict[str, list[int]]], dict[str, int]]:
    """Read, mix, tokenize and pack the training data; returns rows and counts for the summary."""
    from ctxsynth.train.sources import TrainDataError

    dc = config.data
    if not dc.train_files and not dc.general_files:  # general data alone is a valid arm (the paper's first row)
        raise TrainDataError("data.train_files is empty: name an export folder, e.g. "
                             "data.train_files=[runs/quickstart/export/trl_messages]")
    conversations = data.read_messages(dc.train_files, dc.max_samples) if dc.train_files else []
    n_long = len(conversations)
    if dc.general_files:
        conversations += data.read_messages(dc.general_files, dc.general_max_samples)
    eot = data.end_of_turn_id(tokenizer, config.end_of_turn_token)
    samples, dropped = data.tokenize_all(conversations, tokenizer, eot, dc.max_length,
                                         all_turns=config.loss_turns == "all")
    rows = data.build_rows(samples, dc.max_length, dc.packing, dc.shuffle_seed)
    counts = {"long_samples": n_long, "general_samples": len(conversations) - n_long, "dropped_too_long": dropped,
              "rows": len(rows), "tokens": sum(len(s) for s in samples),
              "answer_tokens": sum(sum(1 for x in s.labels if x != data.IGNORE_INDEX) for s in samples)}
    return rows, counts


def sft_args(config: TrainConfig) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        output_dir=config.output_dir, per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type, warmup_steps=config.warmup_ratio, weight_decay=config.weight_decay,
        adam_beta1=config.adam_beta1, adam_beta2=config.adam_beta2, max_grad_norm=config.max_grad_norm,
        num_train_epochs=config.num_train_epochs, max_steps=config.max_steps, bf16=config.bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False}, seed=config.seed, data_seed=config.seed,
        logging_steps=config.logging_steps, save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        report_to=config.report_to, dataloader_num_workers=config.dataloader_num_workers,
        packing=False, max_length=None, dataset_kwargs={"skip_prepare_dataset": True},
        use_cpu=not torch.cuda.is_available(),
    )


def peft_config(config: TrainConfig) -> Any:
    if not config.lora.enabled:
        return None
    from peft import LoraConfig

    lc = config.lora
    return LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=list(lc.target_modules),
                      task_type="CAUSAL_LM")


def build_trainer(
    config: TrainConfig, *, model: Any = None, tokenizer: Any = None, rows: Sequence[dict[str, list[int]]] | None = None,
    niah_fn: NiahEvaluate | None = None, record_batches: bool = False,
) -> PackedSFTTrainer:
    """A ready PackedSFTTrainer; model, tokenizer and rows are built from the config unless given."""
    from datasets import Dataset

    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config)
    if rows is None:
        rows, _ = build_rows(config, tokenizer)
    callbacks = []
    if config.niah.enabled:
        if niah_fn is None:  # the default: a small grid through ctxsynth.niah + ctxsynth.eval.metrics
            from functools import partial

            from ctxsynth.train.niah_eval import evaluate_niah

            niah_fn = partial(evaluate_niah, tokenizer_spec=config.tokenizer or config.model)
        callbacks.append(NiahCallback(niah_fn, config.niah))
    trainer = PackedSFTTrainer(
        model=model if model is not None else load_model(config), args=sft_args(config),
        train_dataset=Dataset.from_list(list(rows)), processing_class=tokenizer, data_collator=PackedCollator(),
        peft_config=peft_config(config), callbacks=callbacks, loss_normalization=config.loss_normalization,
        record_batches=record_batches,
    )
    if config.compile:
        compile_layers(trainer.model)
    return trainer


def decoder_layers(model: Any) -> Any:
    """The decoder layers of a (possibly PEFT-wrapped) causal LM: model.model.layers for Llama-likes."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ConfigError(f"compile: cannot find the decoder layers of {type(base).__name__} (expected .model.layers)")
    return layers


def compile_layers(model: Any) -> int:
    """Regional compilation: compile every decoder layer (not the whole model: the loss, the LM head
    and the data-dependent sample boundaries stay eager, and identical layers share one graph)."""
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile(dynamic=True)
    log.info("compiled %d decoder layers (dynamic shapes)", len(layers))
    return len(layers)


def resume_point(config: TrainConfig) -> str | None:
    """The checkpoint to resume from: a path, the latest one in output_dir (True), or None."""
    from transformers.trainer_utils import get_last_checkpoint

    if isinstance(config.resume_from_checkpoint, str):
        return config.resume_from_checkpoint
    if config.resume_from_checkpoint and Path(config.output_dir).is_dir():
        last = get_last_checkpoint(config.output_dir)
        if last is None:
            log.info("resume requested but %s holds no checkpoint: starting fresh", config.output_dir)
        return last
    return None


def train(config: TrainConfig, *, niah_fn: NiahEvaluate | None = None) -> dict[str, Any]:
    """Fine-tune as configured; saves the model under output_dir/final and returns a summary."""
    from ctxsynth import config as config_io

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.yaml").write_text(config_io.dump_yaml(config), encoding="utf-8")
    tokenizer = load_tokenizer(config)
    rows, counts = build_rows(config, tokenizer)
    trainer = build_trainer(config, tokenizer=tokenizer, rows=rows, niah_fn=niah_fn)
    start = time.time()
    result = trainer.train(resume_from_checkpoint=resume_point(config))
    final = out / "final"
    trainer.save_model(str(final))
    curve = write_loss_curve(trainer.state.log_history, out / "loss_curve.png") if trainer.is_world_process_zero() else None
    summary = {
        **counts, "global_step": trainer.state.global_step, "train_loss": result.training_loss,
        "seconds": round(time.time() - start, 2), "final_dir": str(final), "loss_curve": str(curve) if curve else None,
        "lora": config.lora.enabled, "attn_implementation": trainer.model.config._attn_implementation,
        "loss_normalization": config.loss_normalization, "compile": config.compile,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    if trainer.is_world_process_zero():  # the run's record: what was trained, and every logged step
        (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1), encoding="utf-8")
    return summary
