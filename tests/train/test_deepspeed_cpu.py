"""DeepSpeed ZeRO-3 (configs/accelerate/deepspeed_zero3.yaml, the paper's setup) on CPU: `ctxsynth
train` under `accelerate launch` on two processes (DeepSpeed's CPU accelerator, gloo) takes the same
steps as one process that accumulates the same global batch, and saves the whole model, not a shard.

The config leaves gradient accumulation and clipping to the train config; when it pinned them, any
train config with gradient_accumulation_steps != 1 stopped with DeepSpeed's mismatch error (the
one-process run below accumulates 2). The GPU run of the same config is benchmarks/multigpu.sh zero3.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "accelerate" / "deepspeed_zero3.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _conversations(path: Path) -> None:
    rows = []
    for i in range(8):
        words = " ".join(f"w{(i * 7 + k) % 50}" for k in range(40 + 10 * i))
        rows.append({"id": f"c{i}", "messages": [{"role": "user", "content": f"Read this: {words}. What is item {i}?"},
                                                 {"role": "assistant", "content": f"Item {i} is w{i * 3}."}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _train(tmp: Path, model: Path, data: Path, nprocs: int, accum: int) -> tuple[str, Path]:
    out = tmp / f"out{nprocs}"
    config = {"model": str(model), "output_dir": str(out), "lora": {"enabled": False}, "max_steps": 2,
              "save_steps": 100, "bf16": False, "gradient_checkpointing": False, "learning_rate": 1e-3,
              "gradient_accumulation_steps": accum, "data": {"train_files": [str(data)], "max_length": 512}}
    path = tmp / f"train{nprocs}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG), "--num_processes",
           str(nprocs), "--main_process_port", str(_free_port()), "--mixed_precision", "no",
           "-m", "ctxsynth.cli", "train", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr, out


def test_zero3_on_two_processes_matches_one_that_accumulates(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = tmp_path / "data.jsonl"
    _conversations(data)
    one_out, one = _train(tmp_path, tiny_model_dir, data, nprocs=1, accum=2)
    two_out, two = _train(tmp_path, tiny_model_dir, data, nprocs=2, accum=1)
    assert one_out.count("train: 2 steps") == 1 and two_out.count("train: 2 steps") == 1  # rank 0 prints, once
    losses = {n: [e["loss"] for e in json.loads((d / "log_history.json").read_text()) if "loss" in e]
              for n, d in ((1, one), (2, two))}
    assert len(losses[1]) == len(losses[2]) == 2, losses
    torch.testing.assert_close(torch.tensor(losses[2]), torch.tensor(losses[1]), rtol=1e-5, atol=0)
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    final = {n: load_file(str(d / "final" / "model.safetensors")) for n, d in ((1, one), (2, two))}
    for name, tensor in start.items():  # the whole model, gathered from the shards, and trained
        assert final[2][name].shape == tensor.shape, name
        torch.testing.assert_close(final[2][name], final[1][name], rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(final[2][k], v) for k, v in start.items())
    assert json.loads((two / "summary.json").read_text())["global_step"] == 2
