"""FSDP2 scaling of `ctxsynth train`: the same global batch on 1 process and on N, losses compared.

Each part runs PackedSFTTrainer under `accelerate launch --config_file configs/accelerate/fsdp.yaml`
(FSDP2, full sharding per decoder layer, bf16 mixed precision with fp32 master weights) on the
shapes and random-token 32k packs of train_throughput.py. The global batch is fixed
(--global-batch packs per optimizer step): one process accumulates it over micro-batches, N
processes take one pack each, so both see the same packs in the same steps and the first losses
must agree up to bf16 rounding (reduction order differs).

  python benchmarks/train_fsdp.py part --nprocs 1 --out DIR     # CUDA_VISIBLE_DEVICES=0
  python benchmarks/train_fsdp.py part --nprocs 2 --out DIR
  python benchmarks/train_fsdp.py compare --out DIR             # efficiency + loss match, last line
  ... part --config configs/accelerate/deepspeed_zero3.yaml      # DeepSpeed ZeRO-3 instead: zero3_<n>.json
                                                                # (needs deepspeed; compare --engine zero3)
CPU smoke: BENCH_DEVICE=cpu BENCH_PACK=512 ... --shape tinyfull --attn sdpa (gloo, 2 processes).

tokens/s is the median of per-step rates over the timed steps (as in train_throughput.py), over
all ranks' tokens; scaling efficiency = tokens/s(N) / (N x tokens/s(1)).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
import train_throughput as tt  # noqa: E402

LOSS_RTOL = 2e-2  # bf16 keeps 8 mantissa bits (2^-8 = 0.4%); 20 optimizer steps compound it


def gather(obj: Any) -> list[Any]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def worker(a: argparse.Namespace) -> dict[str, Any] | None:
    import torch
    from transformers import AutoTokenizer, TrainerCallback

    from ctxsynth.models import resolve_model_path

    world = int(os.environ.get("WORLD_SIZE", 1))
    if a.global_batch % world:
        raise SystemExit(f"--global-batch {a.global_batch} is not a multiple of {world} processes")
    accum = a.global_batch // world
    if tt.DEVICE == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(a.tokenizer))
    docs = tt.make_docs(tt.make_packs(a.global_batch * a.steps + 4))
    trainer = tt.build_trainer("ctxsynth", a.shape, a.attn, docs, a.steps, tokenizer, compile_layers=a.compile,
                               grad_accum=accum, logging_steps=1)
    recorder = tt.StepRecorder(trainer.data_collator)
    trainer.data_collator = recorder
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if tt.DEVICE == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    trainer.add_callback(Clock())
    start = time.perf_counter()
    trainer.train()
    # tokens of each optimizer step: this rank's `accum` micro-batches, summed over all ranks
    per_rank = gather([t for t, _ in recorder.batches])
    step_tokens = [sum(sum(r[s * accum:(s + 1) * accum]) for r in per_rank) for s in range(a.steps)]
    peak = gather(torch.cuda.max_memory_allocated() / 2**30 if tt.DEVICE == "cuda" else 0.0)
    if not trainer.is_world_process_zero():
        return None
    ends = [start, *stamps]
    durations = [ends[i + 1] - ends[i] for i in range(a.steps)]
    timed = range(a.warmup, a.steps)
    rates = sorted(step_tokens[i] / durations[i] for i in timed)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"nprocs": world, "grad_accum": accum, "global_batch": a.global_batch, "shape": a.shape, "attn": a.attn,
            "compile": a.compile, "fsdp": bool(trainer.is_fsdp_enabled),
            "deepspeed": bool(getattr(trainer, "is_deepspeed_enabled", False)), "steps": a.steps, "warmup": a.warmup,
            "tokens_per_s": rates[len(rates) // 2],
            "window_mean_tokens_per_s": sum(step_tokens[i] for i in timed) / sum(durations[i] for i in timed),
            "tokens_per_step": sum(step_tokens[i] for i in timed) / len(timed), "losses": losses,
            "step_durations": [round(d, 4) for d in durations], "step_tokens": step_tokens, "peak_mem_gib": peak,
            "versions": tt.versions(), "pack": tt.PACK}


def engine(config: str) -> str:
    """'zero3' for an accelerate config of DeepSpeed, else 'fsdp' (the name of the part's result files)."""
    import yaml

    settings = yaml.safe_load((HERE.parent / config).read_text())  # (an absolute config path stays as it is)
    return "zero3" if settings.get("distributed_type") == "DEEPSPEED" else "fsdp"


def launch(a: argparse.Namespace) -> int:
    """One part: `accelerate launch` of this script's worker on --nprocs processes; saves DIR/<engine>_<n>.json."""
    name = engine(a.config)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(HERE.parent / a.config),
           "--num_processes", str(a.nprocs), "--main_process_port", str(29500 + 10 * a.nprocs)]
    if name == "fsdp":  # every rank builds the same seeded weights
        cmd += ["--fsdp_cpu_ram_efficient_loading", "false"]
    cmd += [__file__, "worker", "--shape", a.shape, "--attn", a.attn, "--steps", str(a.steps), "--warmup",
            str(a.warmup), "--global-batch", str(a.global_batch), "--tokenizer", a.tokenizer]
    cmd += ["--compile"] if a.compile else []
    a.out.mkdir(parents=True, exist_ok=True)
    print(" ".join(cmd), flush=True)
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
        log_text, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        log_text, rc = f"TIMEOUT after {a.timeout}s\n{e.stdout or ''!s}{e.stderr or ''!s}", 124
    (a.out / f"{name}_{a.nprocs}.log").write_text(" ".join(cmd) + "\n" + str(log_text)[-200000:])
    found = [json.loads(line[7:]) for line in str(log_text).splitlines() if line.startswith("RESULT ")]
    if not found:
        print(str(log_text)[-4000:], f"\nno result from {a.nprocs} process(es) (rc {rc})", flush=True)
        return rc or 1
    found[0]["command"] = " ".join(cmd[1:]).replace(str(HERE.parent) + "/", "")
    found[0]["wall_s"] = round(time.time() - t0, 1)
    (a.out / f"{name}_{a.nprocs}.json").write_text(json.dumps(found[0], indent=1) + "\n")
    print(json.dumps({k: v for k, v in found[0].items() if k != "versions"}), flush=True)
    return 0


def compare(out: Path, n: int, name: str = "fsdp") -> dict[str, Any]:
    one = json.loads((out / f"{name}_1.json").read_text())
    many = json.loads((out / f"{name}_{n}.json").read_text())
    pairs = list(zip(one["losses"], many["losses"], strict=False))[:20]
    rel = [abs(x - y) / max(abs(x), 1e-8) for x, y in pairs]
    row = {"efficiency": many["tokens_per_s"] / (n * one["tokens_per_s"]), "compared_losses": len(pairs),
           "loss_max_rel_diff": max(rel) if rel else float("nan"), "tokens_per_s_1": one["tokens_per_s"],
           f"tokens_per_s_{n}": many["tokens_per_s"], "compile": many["compile"], "fsdp": many["fsdp"],
           "deepspeed": many.get("deepspeed", False)}
    row["losses_match"] = bool(pairs) and len(pairs) == min(20, one["steps"]) and row["loss_max_rel_diff"] <= LOSS_RTOL
    (out / f"{name}_compare.json").write_text(json.dumps(row, indent=1) + "\n")
    for s, (x, y) in enumerate(pairs, 1):
        print(f"step {s:2d} loss 1-proc {x:.5f} {n}-proc {y:.5f} rel {abs(x - y) / max(abs(x), 1e-8):.2e}")
    print(f"{name}_scaling_efficiency: {row['efficiency']:.3f} loss_max_rel_diff: {row['loss_max_rel_diff']:.2e} "
          f"losses_match: {'yes' if row['losses_match'] else 'no'} compile: {str(row['compile']).lower()}", flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["part", "compare", "worker"])
    p.add_argument("--out", type=Path, default=Path("bench_out/fsdp"))
    p.add_argument("--nprocs", type=int, default=2)
    p.add_argument("--config", default="configs/accelerate/fsdp.yaml",
                   help="accelerate config: FSDP (default) or DeepSpeed (configs/accelerate/deepspeed_zero3.yaml)")
    p.add_argument("--engine", choices=["fsdp", "zero3"], default="fsdp", help="compare: which parts' results")
    p.add_argument("--shape", default="1b")
    p.add_argument("--attn", default="ctxsynth_varlen")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps; the losses of all are compared")
    p.add_argument("--warmup", type=int, default=6, help="steps not timed (compilation, allocator warm-up)")
    p.add_argument("--global-batch", type=int, default=2)
    p.add_argument("--tokenizer", default=os.environ.get("BENCH_TOKENIZER", "smollm2"))
    p.add_argument("--timeout", type=int, default=420)
    a = p.parse_args()
    if a.mode == "worker":
        result = worker(a)
        if result is not None:
            print("RESULT " + json.dumps(result), flush=True)
    elif a.mode == "part":
        sys.exit(launch(a))
    else:
        compare(a.out, a.nprocs, a.engine)


if __name__ == "__main__":
    main()
