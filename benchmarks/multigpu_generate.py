"""Generation throughput of the `transformers` backend on one replica vs one replica per GPU.

Requests: N context-writing prompts ("a passage of about 220 words on <subject>, <angle>"),
sampled (temperature 0.8, top-p 0.95, seed = request number), max_tokens ~300: the shape of the
synthesize stage's contexts. The model is loaded before the clock starts (all replicas ready);
the clock covers `generate` over all N requests. Prints one JSON line and writes it to --out,
with a sha256 over all texts in request order, so two runs can be checked for identical outputs.

  python benchmarks/multigpu_generate.py --devices 1 --n 2048 --out gen1.json           # one GPU
  python benchmarks/multigpu_generate.py --devices 2 --n 2048 --out gen2.json           # two GPUs
  python benchmarks/multigpu_generate.py --device cpu --devices 2 --n 4 --max-tokens 8  # CPU smoke

`--static-cache` turns on the backend's static_cache option (CUDA graphs for decoding on CUDA);
`--warmup` first generates one batch per replica (other prompts, not counted), so that the clock
measures steady decoding and not torch.compile's first compile; the JSON says which was used.
`--path packed` (with `--max-rows`, its rows per wave) runs the packed path of ctxsynth.llm.hf_packed;
its phase totals (waves, prefill and decoding seconds, steps, compactions) are in the JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

SUBJECTS = ["a lighthouse", "glacier retreat", "medieval bridges", "honeybee colonies", "tidal power",
            "the printing press", "desert rain", "a city library", "volcanic soil", "railway timetables",
            "coral reefs", "a village bakery", "solar eclipses", "river deltas", "night trains", "paper mills"]
ANGLES = ["its history", "how it works", "a day in its life", "what could go wrong", "its future",
          "the people involved", "its costs", "a surprising fact"]


def requests(n: int, max_tokens: int, first: int = 0) -> list[Any]:
    from ctxsynth.llm.base import ChatRequest, SamplingParams

    out = []
    for i in range(first, first + n):
        subject, angle = SUBJECTS[i % len(SUBJECTS)], ANGLES[(i // len(SUBJECTS)) % len(ANGLES)]
        text = f"Write a passage of about 220 words on {subject}, focusing on {angle}. Variant {i}."
        out.append(ChatRequest([{"role": "user", "content": text}],
                               SamplingParams(temperature=0.8, top_p=0.95, max_tokens=max_tokens, seed=i)))
    return out


_PATHS: dict[str, bool | str] = {"auto": "auto", "packed": True, "generate": False}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=1, help="replicas (1 = the model in this process)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-tokens", type=int, default=300)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--static-cache", action="store_true", help="the backend's static_cache option")
    p.add_argument("--path", choices=["auto", "packed", "generate"], default="auto",
                   help="packed generation (the CUDA default), or model.generate (the default before it)")
    p.add_argument("--max-rows", type=int, default=256, help="the packed path's rows per wave")
    p.add_argument("--warmup", action="store_true", help="one untimed batch per replica before the clock")
    p.add_argument("--out", type=Path)
    p.add_argument("--texts", type=Path, help="also write every text (JSON lines, request order), to find which differ")
    a = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import torch

    from ctxsynth.llm.hf_backend import TransformersBackend

    backend = TransformersBackend(a.model, device=a.device, batch_size=a.batch_size,
                                  devices=a.devices if a.devices > 1 else None, static_cache=a.static_cache,
                                  packed=_PATHS[a.path] if not a.static_cache else False, max_rows=a.max_rows)
    t0 = time.perf_counter()
    backend.load()  # every replica loaded and ready before the clock starts
    load_s = time.perf_counter() - t0
    warmup_s = 0.0
    if a.warmup:  # request numbers after the measured ones: other prompts and seeds
        t0 = time.perf_counter()
        backend.generate(requests(a.batch_size * a.devices, a.max_tokens, first=a.n))
        warmup_s = time.perf_counter() - t0
    reqs = requests(a.n, a.max_tokens)
    t0 = time.perf_counter()
    results = backend.generate(reqs)
    seconds = time.perf_counter() - t0
    backend.close()
    tokens = sum(r.usage.get("completion_tokens", 0) for r in results)
    digest = hashlib.sha256("\x00".join(r.text or f"<error {r.error}>" for r in results).encode()).hexdigest()
    row = {"devices": a.devices, "device": a.device, "n": a.n, "batch_size": a.batch_size,
           "max_tokens": a.max_tokens, "seconds": round(seconds, 2), "load_s": round(load_s, 2),
           "static_cache": a.static_cache, "packed": backend.packed, "max_rows": a.max_rows,
           "phases": backend.packed_stats(), "warmup": a.warmup, "warmup_s": round(warmup_s, 2),
           "completion_tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
           "requests_per_s": round(a.n / seconds, 2), "failed": sum(1 for r in results if not r.answered),
           "texts_sha256": digest, "torch": torch.__version__, "python": platform.python_version(),
           "gpu": torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "none (cpu)"}
    print(json.dumps(row), flush=True)
    if a.texts:
        a.texts.parent.mkdir(parents=True, exist_ok=True)
        a.texts.write_text("".join(json.dumps({"i": i, "text": r.text, "error": r.error}) + "\n"
                                   for i, r in enumerate(results)))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
