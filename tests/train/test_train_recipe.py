"""End-to-end recipe on CPU: full and LoRA runs save and reload, resume continues, config passes through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ctxsynth.train import TrainConfig, build_trainer, train


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(12):
            user = "context words " * (10 + 6 * i) + f"What is item {i}?"
            f.write(json.dumps({"messages": [{"role": "user", "content": user},
                                             {"role": "assistant", "content": f"Item {i} is {i * 7}."}]}) + "\n")
    return path


def _config(tiny_model_dir: Path, data_file: Path, out: Path, **kw) -> TrainConfig:
    config = TrainConfig(model=str(tiny_model_dir), output_dir=str(out), bf16=False, learning_rate=1e-3,
                         warmup_ratio=0.0, save_steps=2, logging_steps=1, attn_implementation="sdpa", **kw)
    config.data.train_files = [str(data_file)]
    config.data.max_length = 256
    return config


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits


@pytest.mark.parametrize("lora", [False, True])
def test_full_and_lora_runs_save_and_reload(tiny_model_dir, data_file, tmp_path, lora):
    """The saved final model (full weights or a LoRA adapter) reproduces the trained in-memory model's logits."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = _config(tiny_model_dir, data_file, tmp_path / "run", max_steps=2)
    config.lora.enabled = lora
    trainer = build_trainer(config)
    trainer.train()
    final = tmp_path / "run" / "final"
    trainer.save_model(str(final))  # what ctxsynth.train.train does after training
    ids = list(range(5, 40))
    trained = trainer.model.eval()
    trained.config.use_cache = False
    in_memory = _logits(trained, ids)
    if lora:
        assert (final / "adapter_config.json").exists()
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), final)
    else:
        reloaded = AutoModelForCausalLM.from_pretrained(final)
    untouched = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.allclose(in_memory, _logits(untouched.eval(), ids), atol=1e-4)  # training changed it
    assert torch.allclose(in_memory, _logits(reloaded.eval(), ids), atol=1e-5)  # and the save kept every change


@pytest.mark.slow
def test_resume_continues_step_count_and_data_order(tiny_model_dir, data_file, tmp_path):
    """Resuming from checkpoint-2 runs steps 3-4 on the same packs as an uninterrupted run, to the same weights."""
    straight = build_trainer(_config(tiny_model_dir, data_file, tmp_path / "a", max_steps=4), record_batches=True)
    straight.train()
    config_b = _config(tiny_model_dir, data_file, tmp_path / "b", max_steps=4)
    first = build_trainer(config_b, record_batches=True)
    first.train()  # writes checkpoint-2 and checkpoint-4; resume from the former
    resumed = build_trainer(config_b, record_batches=True)
    resumed.train(resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-2"))
    assert resumed.state.global_step == 4
    assert resumed.batch_fingerprints == straight.batch_fingerprints[2:4]
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-5), name


def test_rope_scaling_and_config_yaml_pass_through(tiny_model_dir, tmp_path):
    """rope_scaling from YAML lands in the model config; unknown keys are rejected."""
    from ctxsynth.config import ConfigError
    from ctxsynth.train.recipe import load_model

    yaml_path = tmp_path / "t.yaml"
    yaml_path.write_text(f"model: {tiny_model_dir}\nrope_scaling: {{rope_type: linear, factor: 4.0}}\n"
                         "max_position_embeddings: 8192\nattn_implementation: sdpa\n")
    config = TrainConfig.from_yaml(yaml_path)
    model = load_model(config)
    assert model.config.rope_parameters["rope_type"] == "linear" and model.config.rope_parameters["factor"] == 4.0
    assert model.config.max_position_embeddings == 8192
    yaml_path.write_text("modle: x\n")
    with pytest.raises(ConfigError, match="Did you mean 'model'"):
        TrainConfig.from_yaml(yaml_path)


def test_paper_config_loads():
    """configs/train/paper.yaml is a valid TrainConfig with the paper's hyperparameters."""
    config = TrainConfig.from_yaml(Path(__file__).resolve().parents[2] / "configs" / "train" / "paper.yaml")
    assert (config.learning_rate, config.adam_beta2, config.num_train_epochs) == (2e-5, 0.95, 2.0)
    assert config.loss_normalization == "sequence" and not config.lora.enabled


@pytest.mark.slow
def test_smollm2_few_steps(data_file, tmp_path):
    """The real embedded SmolLM2-135M trains a few packed steps with a finite, answer-only loss."""
    config = TrainConfig(model="smollm2", output_dir=str(tmp_path / "smol"), bf16=False, max_steps=3, save_steps=100,
                         learning_rate=1e-4, warmup_ratio=0.0, attn_implementation="ctxsynth_varlen")
    config.data.train_files = [str(data_file)]
    config.data.max_length = 512
    summary = train(config)
    assert summary["global_step"] == 3 and 0 < summary["train_loss"] < 20
    assert summary["answer_tokens"] < summary["tokens"] / 5


@pytest.mark.slow
def test_compile_with_lora_trains_like_eager(tiny_model_dir, data_file, tmp_path):
    """`compile: true` on a PEFT-wrapped model (the 8B LoRA benchmark's setup): the compiled run logs
    the same losses as the eager one, step for step (float32, 1e-4 relative), through the optimizer."""
    losses = {}
    for compiled in (False, True):
        config = _config(tiny_model_dir, data_file, tmp_path / f"c{compiled}", max_steps=3, compile=compiled)
        config.lora.enabled = True
        trainer = build_trainer(config)
        trainer.train()
        losses[compiled] = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses[True]) == 3
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
