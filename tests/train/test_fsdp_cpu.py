"""FSDP2 on CPU (gloo, two processes): sharded training steps give the losses and weights of one
process that accumulates the same global batch.

accelerate only applies FSDP on GPUs, so this drives torch's `fully_shard` directly, wrapping each
decoder layer and then the root as configs/accelerate/fsdp.yaml does (TRANSFORMER_BASED_WRAP), and
computes the step loss as PackedSFTTrainer does: each micro-batch's share of the LongAlign
per-sequence loss (ctxsynth.train.loss) divided by a count over the whole global batch, times the
number of ranks (gradients are averaged over ranks). A tiny random Llama, fp32, packed rows with
several samples each, AdamW, three steps. The GPU run of the real trainer is benchmarks/train_fsdp.py.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp

from ctxsynth.train.data import IGNORE_INDEX
from ctxsynth.train.loss import count_targets, reduce_loss

STEPS, WORLD = 3, 2


def _model() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=97, max_position_embeddings=256)
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa")


def _batches() -> list[dict[str, torch.Tensor]]:
    """STEPS x WORLD packed rows of 48 tokens: samples of 16-32 tokens, answers on their last 5."""
    g = torch.Generator().manual_seed(1)
    rows = []
    for _ in range(STEPS * WORLD):
        lengths = [int(torch.randint(16, 33, (1,), generator=g))]
        lengths.append(48 - lengths[0])
        ids = torch.randint(0, 97, (48,), generator=g)
        labels = ids.clone()
        pos, start = [], 0
        for n in lengths:
            labels[start:start + n - 5] = IGNORE_INDEX
            pos += list(range(n))
            start += n
        rows.append({"input_ids": ids[None], "labels": labels[None], "position_ids": torch.tensor([pos])})
    return rows


def _share(model: Any, batch: dict[str, torch.Tensor], denominator: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
    return reduce_loss(nll, labels != IGNORE_INDEX, batch["position_ids"], "sequence", denominator)


def _reference() -> tuple[list[float], dict[str, torch.Tensor]]:
    """One process, gradient accumulation over the WORLD micro-batches of each step."""
    model, batches = _model(), _batches()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for s in range(STEPS):
        micro = batches[s * WORLD:(s + 1) * WORLD]
        count = sum(count_targets(b["labels"], b["position_ids"], "sequence") for b in micro)
        total = 0.0
        for b in micro:
            loss = _share(model, b, count)
            loss.backward()
            total += loss.item()
        opt.step()
        opt.zero_grad()
        losses.append(total)
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rank(rank: int, port: int, out: str) -> None:
    from torch.distributed.fsdp import fully_shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    model, batches = _model(), _batches()
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for s in range(STEPS):
        batch = batches[s * WORLD + rank]  # the sampler deals micro-batch k of a step to rank k
        count = count_targets(batch["labels"], batch["position_ids"], "sequence")
        dist.all_reduce(count)  # PackedSFTTrainer._get_num_items_in_batch: the count over all ranks
        loss = _share(model, batch, count) * WORLD  # gradients are averaged over ranks: undo it
        loss.backward()
        opt.step()
        opt.zero_grad()
        logged = loss.detach() / WORLD
        dist.all_reduce(logged)  # the step loss: every rank's share
        losses.append(float(logged))
    full = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in model.state_dict().items()}
    if rank == 0:
        torch.save({"losses": losses, "state": full}, out)
    dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes importing transformers: ~1-2 min on the shared 2-core box
def test_fsdp2_on_two_gloo_processes_matches_gradient_accumulation_on_one(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "fsdp.pt"
    tmp.spawn(_rank, args=(port, str(out)), nprocs=WORLD, join=True)
    got = torch.load(out, weights_only=False)
    losses, state = _reference()
    assert got["losses"] == pytest.approx(losses, rel=1e-5, abs=1e-6)
    assert losses[0] != losses[-1]  # the weights moved: the match is over real updates
    assert state.keys() == got["state"].keys()
    for name, value in state.items():
        torch.testing.assert_close(got["state"][name], value, rtol=1e-4, atol=1e-5, msg=name)
