"""The RULER results page (docs/results/ruler_smollm2/) from committed files alone.

    python benchmarks/ruler_report.py [--eval-dir runs/eval] [--out docs/results/ruler_smollm2]
                                      [--machine TEXT] [--versions TEXT] [--commit SHA]

Collect (when --eval-dir holds runs of benchmarks/ruler_gpu.sh): each run's predictions.jsonl goes
gzipped to OUT/predictions/<run>.jsonl.gz, its run facts (backend, wall time, errors) with the
machine, versions and commit to OUT/runs.json, runs/ruler/commands.txt to OUT/commands.txt. The
defaults describe the machine the script runs on (ruler_gpu.sh's `report` step runs it there);
collecting elsewhere, pass what ran. Render (always): OUT/README.md from those files only, every
RULER table recomputed from the predictions (the scorer's own summary; collect checks that it
equals each run's scores.json), the paired SFT3 - base differences, commands, versions and n;
OUT/notes.md, if present, is the hand-written reading placed after the summary.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ctxsynth.eval.ruler import report
from ctxsynth.eval.ruler.score import summarize

RUNS = ("ruler-smollm2-base", "ruler-smollm2-sft3", "ruler-32k")
PAIR = ("ruler-smollm2-base", "ruler-smollm2-sft3")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _machine() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"one {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return "CPU"


def _default_versions() -> str:
    recorded = Path("runs/ruler/versions.txt")  # written by `inputs` where the package is installed
    ruler = recorded.read_text().strip() if recorded.is_file() else f"nvidia-long-context-eval {_version('nvidia-long-context-eval')}"
    return (f"{ruler}; torch {_version('torch')}, transformers {_version('transformers')}, "
            f"Python {sys.version.split()[0]}")


def collect(eval_dir: Path, out: Path, machine: str, versions: str, commit: str) -> list[str]:
    """Copy the runs' predictions and facts into `out`; the names collected."""
    names = [n for n in RUNS if (eval_dir / n / "scores.json").is_file()]
    if not names:
        return []
    runs: dict[str, Any] = {}
    raw: dict[str, bytes] = {}
    for name in names:  # every run checked before anything is written
        scores = json.loads((eval_dir / name / "scores.json").read_text(encoding="utf-8"))
        source = eval_dir / name / "predictions.jsonl"
        raw[name] = source.read_bytes() if source.is_file() else b""
        rows = [json.loads(line) for line in raw[name].decode("utf-8").splitlines() if line.strip()]
        if summarize(rows) != (scores.get("ruler") or {}):
            raise SystemExit(f"{source}: the RULER tables recomputed from the predictions differ from "
                             f"{eval_dir / name / 'scores.json'}; nothing collected")
        runs[name] = {"run": scores.get("run") or {}, "machine": machine, "versions": versions, "commit": commit}
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    for name, data in raw.items():
        with gzip.GzipFile(out / "predictions" / f"{name}.jsonl.gz", "wb", mtime=0) as f:
            f.write(data)
    (out / "runs.json").write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    commands = Path("runs/ruler/commands.txt")
    if commands.is_file():
        (out / "commands.txt").write_text(commands.read_text(encoding="utf-8"), encoding="utf-8")
    return names


def render(out: Path) -> str:
    runs = json.loads((out / "runs.json").read_text(encoding="utf-8")) if (out / "runs.json").is_file() else {}
    order = [n for n in RUNS if n in runs] + sorted(set(runs) - set(RUNS))
    rows = {name: report.read_rows(out / "predictions" / f"{name}.jsonl.gz") for name in order}
    blocks = {name: summarize(r) for name, r in rows.items()}
    lines = ["# RULER: SmolLM2-135M-Instruct base vs the pilot's SFT3 model, and the 32K-window model", "",
             "RULER's 13 tasks from RULER's own generators and scorer (the `nvidia-long-context-eval` package), "
             "built for each model's tokenizer by `ctxsynth ruler`, generated greedily by `ctxsynth eval` "
             "(transformers backend), with and without the chat template. n per cell is in the tables "
             "(RULER's own count is 500 samples; fewer here: RULER's first n, the same generator and seed). "
             "Every table below is recomputed by `python benchmarks/ruler_report.py` from the committed "
             "predictions (predictions/*.jsonl.gz) and run facts (runs.json).", ""]
    summary = ["| run | template mode | " + " | ".join(report.length_label(n) for n in (4096, 8192, 16384, 32768))
               + " | effective length |", "|---|---|---|---|---|---|---|"]
    for name, block in blocks.items():
        for mode, b in block.items():
            cells = [str(b["average"].get(str(n), {}).get("score", "-")) for n in (4096, 8192, 16384, 32768)]
            summary.append(f"| {name} | {mode} | " + " | ".join(cells) + f" | {report.effective_label(b['effective_length'], b['lengths'])} |")
    lines += ["## Averages over the 13 tasks (x100)", "", *summary, ""]
    notes = out / "notes.md"
    if notes.is_file():
        lines += [notes.read_text(encoding="utf-8").strip(), ""]
    for name, block in blocks.items():
        facts = runs[name]
        run = facts.get("run") or {}
        lines += [f"Run {name}: {facts.get('machine')}; {facts.get('versions')}; ctxsynth commit {facts.get('commit')}; "
                  f"backend {json.dumps(run.get('backend'), sort_keys=True)}; {run.get('wall_seconds')} s wall; "
                  f"{run.get('n_errors')} errors.", ""]
        for mode, b in block.items():
            lines += [report.table(mode, b, name), ""]
    if all(n in rows for n in PAIR):
        paired = report.paired_rows_markdown([rows[n] for n in PAIR], [blocks[n] for n in PAIR], ["base", "sft3"])
        lines += ["## Paired differences", "", paired, ""]
    if (out / "commands.txt").is_file():
        lines += ["## Commands", "", "```", (out / "commands.txt").read_text(encoding="utf-8").strip(), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=Path("runs/eval"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/ruler_smollm2"))
    parser.add_argument("--machine", default=None, help="where the runs ran (default: this machine's GPU)")
    parser.add_argument("--versions", default=None, help="what ran them (default: this environment's versions)")
    parser.add_argument("--commit", default=None, help="ctxsynth's commit (default: git HEAD here)")
    args = parser.parse_args(argv)
    commit = args.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                           text=True).stdout.strip()
    names = collect(args.eval_dir, args.out, args.machine or _machine(), args.versions or _default_versions(), commit)
    if names:
        print(f"collected {', '.join(names)} from {args.eval_dir}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "README.md").write_text(render(args.out), encoding="utf-8")
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
