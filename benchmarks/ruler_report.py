"""Write the RULER results page (docs/results/ruler_smollm2/README.md) from the eval runs of
benchmarks/ruler_gpu.sh: each model's RULER table per template mode, the paired SFT3 - base
differences, the commands that made them, versions and n; every run's predictions go beside it,
gzipped (predictions/<run>.jsonl.gz), so the tables can be checked against the replies."""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import subprocess
from pathlib import Path

from ctxsynth.eval.ruler import report

RUNS = ("ruler-smollm2-base", "ruler-smollm2-sft3", "ruler-32k")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval-dir", type=Path, default=Path("runs/eval"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/ruler_smollm2"))
    args = parser.parse_args()
    summaries = {n: json.loads((args.eval_dir / n / "scores.json").read_text()) for n in RUNS
                 if (args.eval_dir / n / "scores.json").exists()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = ["# RULER: SmolLM2-135M-Instruct base vs the pilot's SFT3 model (and the 32K model)", "",
             "RULER's 13 tasks from RULER's own generators and scorer (nvidia-long-context-eval "
             f"{_version('nvidia-long-context-eval')}), built for each model's tokenizer by `ctxsynth ruler`, "
             "generated greedily by `ctxsynth eval` (transformers backend), with and without the chat template. "
             "n per cell is in the tables (RULER's own count is 500 samples; fewer here: RULER's first n, "
             "the same generator and seed).", "",
             f"ctxsynth commit {commit}; torch {_version('torch')}, transformers {_version('transformers')}.", ""]
    for name, s in summaries.items():
        run = s.get("run") or {}
        lines += [f"Run {name}: backend {json.dumps(run.get('backend'))}, {run.get('wall_seconds')} s, "
                  f"{run.get('n_errors')} errors.", ""]
        for mode, block in (s.get("ruler") or {}).items():
            lines += [report.table(mode, block, name), ""]
    base, sft3 = (args.eval_dir / n for n in RUNS[:2])
    if (base / "predictions.jsonl").exists() and (sft3 / "predictions.jsonl").exists():
        lines += ["## Paired differences", "", report.paired_markdown([base, sft3], ["base", "sft3"]), ""]
    commands = Path("runs/ruler/commands.txt")
    if commands.exists():
        lines += ["## Commands", "", "```", commands.read_text().strip(), "```", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    for name in summaries:
        source = args.eval_dir / name / "predictions.jsonl"
        if source.exists():
            (args.out / "predictions").mkdir(exist_ok=True)
            with gzip.GzipFile(args.out / "predictions" / f"{name}.jsonl.gz", "wb", mtime=0) as f:
                f.write(source.read_bytes())
    (args.out / "README.md").write_text("\n".join(lines))
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
