"""The end-of-run summary: verdict counts, context word lengths, throughput, and a plain verdict.

Written as runs/<name>/summary.json and summary.md and printed by `ctxsynth run`; the full dataset
card with plots is the report stage.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from ctxsynth.eval.stage import summary_line
from ctxsynth.io import atomic_write_text, read_shards
from ctxsynth.pipeline.stages import RECORD_STAGES, stage_folder


def _word_stats(lengths: list[int]) -> dict[str, Any]:
    if not lengths:
        return {"n": 0}
    qs = statistics.quantiles(lengths, n=4) if len(lengths) > 1 else [lengths[0]] * 3
    return {"n": len(lengths), "min": min(lengths), "p25": round(qs[0]), "median": round(qs[1]),
            "p75": round(qs[2]), "max": max(lengths), "mean": round(statistics.fmean(lengths), 1)}


def _count_attempts(record: dict[str, Any], reasons: dict[str, int]) -> None:
    for a in record.get("attempts", []):
        key = a.get("reason") or "passed"
        reasons[key] = reasons.get(key, 0) + 1


def build_summary(run_dir: Path, stopped: dict[str, Any] | None = None) -> dict[str, Any]:
    """One streaming pass over the synthesized records (kept, then rejected): memory holds counts and
    one word length per kept context, never the records."""
    synth, seeds = run_dir / stage_folder("synthesize"), run_dir / stage_folder("seeds")
    attempt_reasons: dict[str, int] = {}
    lengths: list[int] = []
    first: dict[str, Any] | None = None  # the first record: its provenance names the model and the target
    for rec in read_shards(synth):
        first = first or rec
        lengths.append(len(rec["context"].split()))
        _count_attempts(rec, attempt_reasons)
    verdicts: dict[str, int] = {"passed": len(lengths)}
    n_rejected = 0
    for r in read_shards(synth / "rejected"):
        first = first or r["record"]
        n_rejected += 1
        verdicts[r["reason"]] = verdicts.get(r["reason"], 0) + 1
        _count_attempts(r["record"], attempt_reasons)
    seeds_rejected = sum(1 for _ in read_shards(seeds / "rejected"))
    done = run_dir / "_state" / "synthesize" / "DONE"
    stats = json.loads(done.read_text()) if done.exists() else {}
    usage = stats.get("usage", {})
    seconds = stats.get("seconds", 0.0)
    n = len(lengths) + n_rejected
    target = first["provenance"]["target_words"] if first is not None else None
    model = (first or {"provenance": {}})["provenance"].get("model")
    return {
        "run": str(run_dir), "model": model, "seeds": n, "seeds_rejected": seeds_rejected,
        "verdicts": verdicts, "attempt_verdicts": attempt_reasons, "target_words": target,
        "context_words": _word_stats(lengths),
        "throughput": {
            "seconds": round(seconds, 1),
            "requests_sent": usage.get("requests_sent", 0), "requests_cached": usage.get("requests_cached", 0),
            "http_attempts": usage.get("http_attempts", usage.get("requests_sent", 0)),
            "completion_tokens": usage.get("completion_tokens", 0),
            "completion_tokens_per_s": round(usage.get("completion_tokens", 0) / seconds, 1) if seconds else None,
            "seeds_per_min": round(60 * n / seconds, 2) if seconds else None,
        },
        "pass_rate": round(len(lengths) / n, 3) if n else 0.0,
        "stopped": stopped,  # why the run stopped unfinished (cause, endpoint, status, message), else None
        "model_comparison": _model_comparison(run_dir),
    }


def _model_comparison(run_dir: Path) -> str | None:
    return summary_line(run_dir)


CAUSES = {"outage": "an outage (endpoint unreachable, timing out or failing)", "auth": "an authentication error",
          "not_found": "an unknown model or URL", "rate_limit": "rate limits that outlasted every retry"}


def verdict_text(summary: dict[str, Any]) -> str:
    stopped = summary.get("stopped")
    if stopped:
        cause = CAUSES.get(stopped.get("cause", ""), stopped.get("cause", "an infrastructure failure"))
        return (f"The run stopped unfinished because of {cause} at {stopped.get('endpoint') or 'the endpoint'}, not "
                "because of the generator's output; no stage was marked complete by it. Fix the cause and rerun "
                "the same command: answered requests come from the cache.")
    rate = summary["pass_rate"]
    failures = {k: v for k, v in summary["verdicts"].items() if k != "passed"}
    top = max(failures, key=lambda k: failures[k]) if failures else None
    if summary["seeds"] == 0:
        return "No seeds reached synthesis."
    text = f"{summary['verdicts']['passed']} of {summary['seeds']} contexts passed verification ({rate:.0%})."
    if rate < 0.5:
        text += (f" Most failed (chiefly {top!r}): the generator {summary['model']!r} is too weak for usable data;"
                 " this is expected of the 135M embedded model. Use a stronger generator (llm.backend=openai).")
    elif top:
        text += f" The commonest failure was {top!r}."
    return text


def to_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Synthesis summary: {summary['run']}", "", verdict_text(summary), "", "| verdict | seeds |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["verdicts"].items()]
    w = summary["context_words"]
    lines += ["", f"Context words (kept; target {summary['target_words']}): " + ", ".join(f"{k} {v}" for k, v in w.items())]
    t = summary["throughput"]
    lines += ["", "Throughput: " + ", ".join(f"{k} {v}" for k, v in t.items()), ""]
    lines += [f"Read the samples in a browser: `ctxsynth view {summary['run']}` writes [view/index.html](view/index.html).", ""]
    if summary.get("model_comparison"):  # the train and eval stages ran (ctxsynth.eval.stage)
        lines += [summary["model_comparison"], ""]
    return "\n".join(lines)


def write_summary(run_dir: Path, stopped: dict[str, Any] | None = None) -> dict[str, Any]:
    summary = build_summary(run_dir, stopped)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(run_dir / "summary.md", to_markdown(summary))
    return summary


def print_summary(summary: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"ctxsynth run: {summary['run']}")
    table.add_column("verdict")
    table.add_column("seeds", justify="right")
    for key, value in summary["verdicts"].items():
        table.add_row(key, str(value))
    console.print(table)
    w = summary["context_words"]
    if w.get("n"):
        console.print(f"context words (target {summary['target_words']}): min {w['min']}, median {w['median']}, "
                      f"mean {w['mean']}, max {w['max']}")
    t = summary["throughput"]
    console.print(f"throughput: {t['seeds_per_min']} seeds/min, {t['completion_tokens_per_s']} generated tokens/s "
                  f"({t['requests_sent']} requests sent{_attempts(t)}, {t['requests_cached']} from cache, "
                  f"{t['seconds']} s)")
    if summary.get("model_comparison"):  # the train and eval stages ran
        console.print(summary["model_comparison"], highlight=False)
    console.print(verdict_text(summary))
    for line in output_lines(Path(summary["run"])):
        console.print(line, soft_wrap=True, markup=False)


def _count(folder: Path) -> int:
    return sum(1 for _ in read_shards(folder))


def output_lines(run: Path) -> list[str]:
    """Where each output of the run is, and the one command that trains on it (paths relative to the
    working directory when the run is below it)."""
    try:
        run = run.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    lines = ["outputs:"]
    for stage in RECORD_STAGES:
        folder = stage_folder(stage)
        if (run / folder).is_dir():
            lines.append(f"  {stage:<10} {run / folder}/ ({_count(run / folder)} records; rejected with reasons: "
                         f"{run / folder / 'rejected'}/, {_count(run / folder / 'rejected')})")
    for manifest in sorted((run / "export").glob("*/manifest.json")):
        data = json.loads(manifest.read_text())
        lines.append(f"  export     {manifest.parent}/ ({data['counts']['total']} rows, {data['format']})")
    lines.append(f"  page       ctxsynth view {run} -> {run / 'view' / 'index.html'}")
    for name, path in (("summary", run / "summary.md"), ("card", run / "report" / "README.md")):
        if path.exists():
            lines.append(f"  {name:<10} {path}")
    export = run / "export" / "trl_messages"
    if (export / "manifest.json").exists():
        lines.append(f"train on it: ctxsynth train configs/train/smollm2_quick.yaml 'data.train_files=[{export}]' "
                     f"output_dir={run / 'train'}")
    return lines


def _attempts(throughput: dict[str, Any]) -> str:
    """', N HTTP attempts with retries and hedges' where the server saw more than the requests."""
    extra = throughput.get("http_attempts", 0) - throughput["requests_sent"]
    return f" in {throughput['http_attempts']} HTTP attempts ({extra} retries and hedges)" if extra > 0 else ""
