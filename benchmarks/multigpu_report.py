"""The report of benchmarks/multigpu.sh: its result folder -> one markdown page (docs/results/multigpu.md).

Reads what each part left (train/fsdp_{1,2}.json, gen_{1,2}.json, eval/eval_{1,2}/, machine.txt,
versions.json, and train/zero3_{1,2}.json where DeepSpeed ran); a part that did not run is reported
as missing, not guessed. Per-step training rates and per-item eval scores get bootstrap 95%
intervals (ctxsynth.eval.stats, n given). The last line: `gen_speedup: <x> fsdp_efficiency: <e>
losses_match: <yes|no> eval_identical: <yes|no>`, then `zero3_efficiency: <e> zero3_losses_match:
<yes|no>` where DeepSpeed ran.

  python benchmarks/multigpu_report.py --results runs/gpu_out/multigpu --out docs/results/multigpu.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from ctxsynth.eval.stats import bootstrap  # noqa: E402


def load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def interval(values: list[float], scale: float = 1.0) -> str:
    if not values:
        return "n/a"
    e = bootstrap(values)
    return f"{e.mean * scale:,.0f} [{e.low * scale:,.0f}, {e.high * scale:,.0f}] (n={e.n})"


def generation(r: Path) -> tuple[list[str], float | None]:
    one, two = load(r / "gen_1.json"), load(r / "gen_2.json")
    lines = ["## Generation: the `transformers` backend, one replica per GPU (`devices: 2`)", ""]
    if not (one and two):
        return lines + [f"Missing: {'gen_1.json' if not one else 'gen_2.json'} (the part did not finish).", ""], None
    speedup = two["tokens_per_s"] / one["tokens_per_s"]
    same = one["texts_sha256"] == two["texts_sha256"]
    lines += [f"{one['n']} requests (a ~220-word passage each, sampled at temperature 0.8, top-p 0.95, seed = "
              f"request number), max_tokens {one['max_tokens']}, batches of {one['batch_size']}, static_cache "
              f"{'on (CUDA graphs)' if one.get('static_cache') else 'off'}; clock after every replica has loaded "
              f"the model{' and generated one untimed warm-up batch' if one.get('warmup') else ''}. One run per "
              f"setting (n=1 run of {one['n']} requests; no interval).", "",
              "| replicas | seconds | completion tokens | tokens/s | requests/s | failed | load s | warm-up s |",
              "|---|---|---|---|---|---|---|---|"]
    for row in (one, two):
        lines.append(f"| {row['devices']} | {row['seconds']} | {row['completion_tokens']:,} | {row['tokens_per_s']:,.0f} | "
                     f"{row['requests_per_s']} | {row['failed']} | {row['load_s']} | {row.get('warmup_s', 0)} |")
    lines += ["", f"**Speed-up 2 vs 1 GPU: {speedup:.2f}x** (target >= 1.8). Texts identical to one GPU "
              f"(sha256 over all {one['n']} texts in request order): **{'yes' if same else 'NO'}**.", ""]
    return lines, speedup


TITLES = {"fsdp": "FSDP2 through accelerate (configs/accelerate/fsdp.yaml)",
          "zero3": "DeepSpeed ZeRO-3 through accelerate (configs/accelerate/deepspeed_zero3.yaml)"}
# per engine: its name, the result key that says it was active, who keeps the fp32 master weights
ACTIVE = {"fsdp": ("FSDP", "fsdp", "accelerate upcasts for FSDP2"),
          "zero3": ("DeepSpeed", "deepspeed", "DeepSpeed's bf16 optimizer")}


def training(r: Path, name: str = "fsdp") -> tuple[list[str], float | None, bool | None]:
    one, two = load(r / f"train/{name}_1.json"), load(r / f"train/{name}_2.json")
    lines = [f"## Training: {TITLES[name]}", ""]
    label, key, masters = ACTIVE[name]
    if not (one and two):
        return lines + [f"Missing: {f'train/{name}_1.json' if not one else f'train/{name}_2.json'}.", ""], None, None
    pairs = list(zip(one["losses"], two["losses"], strict=False))[:20]
    rel = [abs(a - b) / max(abs(a), 1e-8) for a, b in pairs]
    eff = two["tokens_per_s"] / (2 * one["tokens_per_s"])
    match = len(pairs) == min(20, one["steps"]) and max(rel) <= 2e-2
    lines += [f"Shape {one['shape']} ({one['attn']} attention), packs of <= {one['pack']:,} tokens, random tokens "
              "(benchmarks/train_throughput.py). "
              f"Global batch {one['global_batch']} packs per optimizer step: 1 process accumulates "
              f"{one['grad_accum']} micro-batches, 2 processes take one each (the same packs in the same steps). "
              f"{one['steps']} steps, the first {one['warmup']} not timed; compile: {two['compile']}; "
              f"{label} active: 1 process {one.get(key)}, 2 processes {two.get(key)}. bf16 mixed precision, "
              f"fp32 master weights ({masters}).", "",
              "| processes | tokens/s (median step) | tokens/s per step, mean [95% CI] | window mean | tokens/step | "
              "peak GiB per GPU | wall s |", "|---|---|---|---|---|---|---|"]
    for row in (one, two):
        steps = range(row["warmup"], row["steps"])
        per_step = [row["step_tokens"][i] / row["step_durations"][i] for i in steps]
        lines.append(f"| {row['nprocs']} | {row['tokens_per_s']:,.0f} | {interval(per_step)} | "
                     f"{row['window_mean_tokens_per_s']:,.0f} | {row['tokens_per_step']:,.0f} | "
                     f"{max(row['peak_mem_gib']):.1f} | {row.get('wall_s', '?')} |")
    lines += ["", f"**Scaling efficiency (2-GPU tokens/s / (2 x 1-GPU)): {eff:.3f}** (target >= 0.90). "
              f"**First {len(pairs)} losses match: {'yes' if match else 'NO'}** (max relative difference "
              f"{max(rel):.2e}; tolerance 2e-2 for bf16).", "", "| step | loss, 1 process | loss, 2 processes |",
              "|---|---|---|"]
    lines += [f"| {s} | {a:.5f} | {b:.5f} |" for s, (a, b) in enumerate(pairs, 1)]
    lines += ["", f"Command (1 process; 2 the same with --num_processes 2): `{one.get('command', '?')}`", ""]
    return lines, eff, match


def evaluation(r: Path) -> tuple[list[str], bool | None]:
    lines = ["## Evaluation: data-parallel over local GPUs (`model.options.devices: 2`)", ""]
    runs = {n: r / f"eval/eval_{n}" for n in (1, 2)}
    if not all((d / "predictions.jsonl").is_file() for d in runs.values()):
        return lines + ["Missing: an eval run did not finish.", ""], None
    preds = {n: [json.loads(x) for x in (d / "predictions.jsonl").read_text().splitlines()] for n, d in runs.items()}
    sc = {n: load(d / "scores.json") for n, d in runs.items()}
    same = [(p["id"], p["prediction"], p["score"]) for p in preds[1]] == [(p["id"], p["prediction"], p["score"])
                                                                           for p in preds[2]]
    lines += [f"{len(preds[1])} held-out HotpotQA items (runs/items/hotpotqa_heldout200.jsonl.gz), SmolLM2-135M-"
              "Instruct, greedy, batches of 32; the 2-GPU run splits the batches over two replica processes and "
              "merges the predictions in item order.", "", "| GPUs | wall s | score, mean [95% CI] |", "|---|---|---|"]
    for n in (1, 2):
        scores = [float(p["score"]) for p in preds[n]]
        lines.append(f"| {n} | {sc[n]['run']['wall_seconds']} | {interval(scores, 100)} |")
    lines += ["", f"**Predictions and scores identical (ids, texts, per-item scores, in order): "
              f"{'yes' if same else 'NO'}**.", ""]
    return lines, same


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    r = a.results
    versions = load(r / "versions.json") or {}
    machine = (r / "machine.txt").read_text().strip() if (r / "machine.txt").is_file() else "unknown (machine.txt missing)"
    lines = ["# Several GPUs: generation, FSDP training and evaluation on 1 vs 2 GPUs", "",
             "Script: `bash benchmarks/multigpu.sh one train2 gen2 eval2` (benchmarks/multigpu.sh names every "
             "command), then `report`. The 1-GPU baselines (`one`) ran at the same time on different GPUs: "
             "training on GPU 0, generation then evaluation on GPU 1.", "",
             f"- machine: {machine}", *[f"- {k}: {v}" for k, v in versions.items()], ""]
    gen_lines, speedup = generation(r)
    train_lines, eff, match = training(r)
    eval_lines, same = evaluation(r)
    lines += gen_lines + train_lines
    zero3 = training(r, "zero3") if list(r.glob("train/zero3_*.json")) else None  # optional: where it ran
    if zero3:
        lines += zero3[0]
    lines += eval_lines
    yn = {True: "yes", False: "no", None: "missing"}
    last = (f"gen_speedup: {speedup:.2f}" if speedup else "gen_speedup: missing") + \
        (f" fsdp_efficiency: {eff:.3f}" if eff else " fsdp_efficiency: missing") + \
        f" losses_match: {yn[match]} eval_identical: {yn[same]}"
    if zero3:
        last += (f" zero3_efficiency: {zero3[1]:.3f}" if zero3[1] else " zero3_efficiency: missing") + \
            f" zero3_losses_match: {yn[zero3[2]]}"
    lines.append(last)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
