"""Evaluation throughput: the packed generation path against model.generate on the same items.

Both paths run in this process on the same requests (`ctxsynth eval`'s prompts: items fitted to
`--max-model-len` with the model's chat template, greedy, each item's max_new_tokens). Each model
is loaded, then warmed up on 2 items (CUDA context, kernel lookups), before its clock starts; the
clock covers `generate` over all items. Printed: prompt and generated tokens, wall seconds, tokens/s,
the work in FLOPs and the share of the GPU's bf16 peak (790 TFLOP/s, the H200's measured dense
rate) that it implies, the share of items whose texts are identical and the paired score
difference (packed - generate) with a 95% bootstrap interval over items.

FLOPs, counting only work the objective needs: 2 x non-embedding parameters per token read or
generated; the LM head (2 x hidden x vocab) once per generated token (the packed path computes it
only there; model.generate also at every prompt position of the last step, which is not counted);
attention 4 x heads x head_dim per (query, key) pair a causal layer attends, pairs counted per
layer (a sliding-window layer sees at most its window).

  python benchmarks/eval_throughput.py --items runs/niah/test_grid_small/test --device cuda --out r.json
  python benchmarks/eval_throughput.py --items ITEMS --limit 4 --device cpu --max-new-tokens 4   # smoke
  python benchmarks/eval_throughput.py --items ITEMS --model gemma3-270m --max-model-len 32768 --tokenize-only

`--tokenize-only` loads no model: it times `ctxsynth eval`'s tokenization of the items (the runner's
fit, then the transformers backend's `hf_prompts.encode_all`) with the backend encoding every prompt
again and with it taking the fit's ids (ctxsynth.tokenize.shared_encodings, as `ctxsynth eval` runs),
two passes each in the order A B B A (means reported), and checks that both give the same ids. Last line: `tokenize_seconds: <shared>
separate_seconds: <encoded twice> identical: <share of prompts with the same ids>`.

Last line: `eval_seconds: <packed> baseline_seconds: <generate> limit_seconds: <flop / 790e12>
identical: <share of items with the same text>`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

PEAK = 790e12  # dense bf16 FLOP/s of one H200, measured (8192^3 matrix product on random data)


def load_items(paths: list[Path], limit: int | None, seed: int) -> list[Any]:
    from ctxsynth.io import read_jsonl
    from ctxsynth.records import EvalItem

    items: list[Any] = []
    for path in paths:
        files = sorted(path.glob("*.jsonl*")) if path.is_dir() else [path]
        if not files:
            raise SystemExit(f"{path}: no .jsonl files")
        for f in files:
            items.extend(EvalItem(**d) for d in read_jsonl(f))
    if limit is not None and limit < len(items):  # a spread over the whole grid, not its first cells
        items = random.Random(seed).sample(items, limit)
    return items


def flops(config: Any, params_non_embedding: int, prompts: list[int], generated: list[int]) -> float:
    """The work of reading every prompt and writing every reply (see the module docstring)."""
    from ctxsynth.llm.hf_packed_plan import model_shape

    text = getattr(config, "text_config", None) or config
    shape = model_shape(config)
    width = int(text.num_attention_heads) * shape.head_dim
    total = 0.0
    for n, g in zip(prompts, generated, strict=True):
        total += 2.0 * params_non_embedding * (n + g) + 2.0 * text.hidden_size * text.vocab_size * g
        for window in shape.windows:
            total += 4.0 * width * _pairs(n + g, window)
    return total


def _pairs(length: int, window: int | None) -> int:
    """(query, key) pairs of causal attention over `length` tokens, within `window` if given."""
    if window is None or window >= length:
        return length * (length + 1) // 2
    return window * (window + 1) // 2 + (length - window) * window


def non_embedding_params(model: Any) -> int:
    embeddings = {id(p) for m in model.modules() if m.__class__.__name__.endswith("Embedding")
                  for p in m.parameters(recurse=False)}
    head = getattr(model, "lm_head", None)
    if head is not None:
        embeddings |= {id(p) for p in head.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings)


def run_path(backend: Any, requests: list[Any]) -> tuple[list[Any], float, dict[str, float]]:
    """Timed generation after a 2-item warm-up; also the packed path's phase totals for the timed part."""
    backend.load()
    backend.generate(requests[:2])  # warm-up: CUDA context, kernels; not timed
    sync(backend.device)
    before = backend.packed_stats()
    t0 = time.perf_counter()
    results = backend.generate(requests)
    sync(backend.device)
    seconds = time.perf_counter() - t0
    after = backend.packed_stats()
    phases = {k: round(v - before.get(k, 0), 3) for k, v in after.items()}
    return results, seconds, phases


def profile(backend: Any, requests: list[Any], rows: int) -> str:
    """The packed path on `rows` requests under torch.profiler: the 25 costliest operators by device time."""
    import torch
    from torch.profiler import ProfilerActivity

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if backend.device.startswith("cuda") else [])
    with torch.profiler.profile(activities=activities) as prof:
        backend.generate(requests[:rows])
        sync(backend.device)
    key = "cuda_time_total" if backend.device.startswith("cuda") else "cpu_time_total"
    return str(prof.key_averages().table(sort_by=key, row_limit=25))


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def paired_interval(a: list[float], b: list[float], seed: int = 0, rounds: int = 2000) -> tuple[float, float, float]:
    """Mean of a - b and its 95% percentile bootstrap interval over items."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    return sum(diffs) / n, means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def tokenize_only(items: list[Any], model: str, tokenizer: str | None, max_model_len: int) -> dict[str, Any]:
    """`ctxsynth eval`'s tokenization of `items` with and without the shared encodings; seconds and ids."""
    from transformers import AutoTokenizer

    from ctxsynth.eval.runner import prepare_requests
    from ctxsynth.llm import hf_prompts
    from ctxsynth.models import resolve_tokenizer_path
    from ctxsynth.tokenize import load_tokenizer, shared_encodings

    tok = load_tokenizer(tokenizer or model)
    hf = AutoTokenizer.from_pretrained(resolve_tokenizer_path(tokenizer or model), local_files_only=True)
    out: dict[str, Any] = {"items": len(items), "max_model_len": max_model_len, "tokenizer": tokenizer or model}
    ids: dict[bool, dict[int, list[int]]] = {}
    passes: dict[str, list[dict[str, float]]] = {"separate": [], "shared": []}
    for shared in (False, True, True, False):  # A B B A: a drift over the passes (warm caches) cancels out
        t0 = time.perf_counter()
        with shared_encodings() if shared else contextlib.nullcontext():
            _, requests = prepare_requests(items, tok, max_model_len)
            t1 = time.perf_counter()
            ids[shared], errors = hf_prompts.encode_all(hf, requests, max_model_len)
        t2 = time.perf_counter()
        key = "shared" if shared else "separate"
        passes[key].append({"fit_s": t1 - t0, "encode_s": t2 - t1, "seconds": t2 - t0, "failed": len(errors)})
        print(f"{key}: runner fit {t1 - t0:.2f} s + backend encode {t2 - t1:.2f} s = {t2 - t0:.2f} s", flush=True)
    for key, runs in passes.items():  # the mean of the mode's two passes
        out[key] = {k: round(sum(r[k] for r in runs) / len(runs), 3) for k in runs[0]}
        out[key]["passes"] = [round(r["seconds"], 3) for r in runs]
    out["prompt_tokens"] = sum(len(v) for v in ids[True].values())
    out["identical"] = sum(ids[True].get(i) == v for i, v in ids[False].items()) / max(1, len(ids[False]))
    return out


def report_tokenize_only(a: argparse.Namespace) -> None:
    import tokenizers
    import transformers

    row = tokenize_only(load_items(a.items, a.limit, seed=0), a.model, a.tokenizer, a.max_model_len)
    row.update(command="benchmarks/eval_throughput.py " + " ".join(sys.argv[1:]), python=platform.python_version(),
               transformers=transformers.__version__, tokenizers=tokenizers.__version__,
               machine=f"{platform.machine()}, {os.cpu_count()} cores")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(row, indent=1) + "\n")
    print(f"tokenize_seconds: {row['shared']['seconds']:.3f} separate_seconds: {row['separate']['seconds']:.3f} "
          f"identical: {row['identical']:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=Path, nargs="+", required=True, help="NIAH test folders or item JSONL files")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--tokenizer", default=None, help="default: the model's own")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--max-model-len", type=int, default=None, help="default: the model's window")
    p.add_argument("--max-new-tokens", type=int, default=None, help="override every item's budget")
    p.add_argument("--batch-size", type=int, default=128, help="model.generate's rows per batch")
    p.add_argument("--prefill-tokens", type=int, default=131072)
    p.add_argument("--max-rows", type=int, default=1024)
    p.add_argument("--decode-kernel", default="auto", help="the packed path's decoding attention (auto: the device's "
                   "default; or flash, sdpa, bmm)")
    p.add_argument("--prefill-kernel", default="varlen", help="the packed path's prefill attention for "
                   "full-attention layers (varlen, or dense: cuDNN on right-padded groups)")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--reference-batch-size", type=int, default=0, metavar="B",
                   help="also run model.generate with B rows per batch: how identical the default path is to "
                        "itself across batch sizes, the yardstick for the packed path's identical share")
    p.add_argument("--out", type=Path)
    p.add_argument("--predictions", type=Path, help="also write both paths' texts (JSON lines)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after the timed runs, profile the packed path on N items and print its costliest operators")
    p.add_argument("--tokenize-only", action="store_true",
                   help="no model: time the eval's tokenization with and without the shared encodings")
    a = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import dataclasses

    if a.tokenize_only:
        if not a.max_model_len:
            p.error("--tokenize-only needs --max-model-len (no model is loaded to read its window)")
        report_tokenize_only(a)
        return

    import torch
    import transformers

    from ctxsynth.eval.runner import prediction_row, prepare_requests
    from ctxsynth.llm.hf_backend import TransformersBackend
    from ctxsynth.tokenize import load_tokenizer

    items = load_items(a.items, a.limit, seed=0)
    if a.max_new_tokens:
        items = [dataclasses.replace(it, max_new_tokens=a.max_new_tokens) for it in items]
    new = TransformersBackend(a.model, device=a.device, dtype=a.dtype, packed=True, prefill_tokens=a.prefill_tokens,
                              max_rows=a.max_rows, decode_kernel=a.decode_kernel, prefill_kernel=a.prefill_kernel)
    tok = load_tokenizer(a.tokenizer or str(new.path))
    new.load()
    fitted, requests = prepare_requests(items, tok, a.max_model_len or new.context_window)
    new_results, new_s, phases = run_path(new, requests)
    print(f"packed: {len(requests)} items in {new_s:.3f} s, phases {phases}", flush=True)  # before the baseline runs
    config, n_params = new.hf_model.config, non_embedding_params(new.hf_model)
    table = profile(new, requests, a.profile) if a.profile else None
    new.close()
    old_results, old_s = (None, None)
    if not a.skip_baseline:
        old = TransformersBackend(a.model, device=a.device, dtype=a.dtype, packed=False, batch_size=a.batch_size)
        old_results, old_s, _ = run_path(old, requests)
        old.close()
    reference = None
    if a.reference_batch_size and old_results is not None:
        ref = TransformersBackend(a.model, device=a.device, dtype=a.dtype, packed=False,
                                  batch_size=a.reference_batch_size)
        ref_results, ref_s, _ = run_path(ref, requests)
        ref.close()
        reference = {"batch_size": a.reference_batch_size, "seconds": round(ref_s, 3),
                     "identical_to_generate": round(sum(x.text == y.text for x, y in zip(
                         ref_results, old_results, strict=True)) / len(items), 4)}
    prompts = [r.usage.get("prompt_tokens", 0) for r in new_results]
    generated = [r.usage.get("completion_tokens", 0) for r in new_results]
    work = flops(config, n_params, prompts, generated)
    new_rows = [prediction_row(i, f, r) for i, f, r in zip(items, fitted, new_results, strict=True)]
    row: dict[str, Any] = {
        "items": len(items), "model": a.model, "device": a.device, "dtype": str(new.dtype).removeprefix("torch."),
        "prompt_tokens": sum(prompts), "generated_tokens": sum(generated), "non_embedding_params": n_params,
        "flop": work, "limit_seconds": round(work / PEAK, 3),
        "packed": {"seconds": round(new_s, 3), "tokens_per_s": round((sum(prompts) + sum(generated)) / new_s),
                   "peak_fraction": round(work / new_s / PEAK, 4), "failed": sum(not r.answered for r in new_results),
                   "score": sum(r["score"] for r in new_rows) / len(new_rows), "phases": phases},
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "none (cpu)",
        "command": " ".join(sys.argv),
    }
    identical = None
    if old_results is not None and old_s is not None:
        old_rows = [prediction_row(i, f, r) for i, f, r in zip(items, fitted, old_results, strict=True)]
        identical = sum(x.text == y.text for x, y in zip(new_results, old_results, strict=True)) / len(items)
        mean, lo, hi = paired_interval([r["score"] for r in new_rows], [r["score"] for r in old_rows])
        row["generate"] = {"seconds": round(old_s, 3), "tokens_per_s": round((sum(prompts) + sum(generated)) / old_s),
                           "peak_fraction": round(work / old_s / PEAK, 4),
                           "failed": sum(not r.answered for r in old_results),
                           "score": sum(r["score"] for r in old_rows) / len(old_rows), "batch_size": a.batch_size}
        row["identical"] = round(identical, 4)
        row["score_difference"] = {"mean": mean, "ci95": [lo, hi]}
        if reference is not None:
            row["generate_other_batch"] = reference
    if table:
        print(table, flush=True)
    print(json.dumps(row, indent=1), flush=True)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(row, indent=1) + "\n")
    if a.predictions:
        with a.predictions.open("w") as fh:
            for k, item in enumerate(items):
                fh.write(json.dumps({"id": item.id, "packed": new_results[k].text,
                                     "generate": old_results[k].text if old_results else None}) + "\n")
    print(f"eval_seconds: {new_s:.3f} baseline_seconds: {old_s if old_s is None else round(old_s, 3)} "
          f"limit_seconds: {work / PEAK:.3f} identical: {identical if identical is None else round(identical, 4)}")


if __name__ == "__main__":
    main()
