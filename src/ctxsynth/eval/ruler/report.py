"""RULER tables in markdown: one run's table per template mode, and two runs side by side with
paired differences (the same RULER samples, matched by id, resampled together).

Input is the `ruler` block of scores.json (ctxsynth.eval.ruler.score.summarize); the paired
comparison also reads each run's predictions.jsonl for the per-sample scores.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctxsynth.eval.ruler.score import LEVEL, is_ruler
from ctxsynth.eval.ruler.tasks import CHAT_MODE
from ctxsynth.eval.stats import RESAMPLES

MODE_LABELS = {"base": "base: no chat template (RULER's 'base')",
               CHAT_MODE: "chat: the model's chat template"}


def mode_label(mode: str) -> str:
    return MODE_LABELS.get(mode, f"{mode}: RULER's '{mode}' template")


def length_label(length: int | str) -> str:
    n = int(length)
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


def _cell(c: Mapping[str, Any] | None, n: bool = True) -> str:
    if not c:
        return "-"
    text = f"{c['score']:.2f} [{c['low']:.1f}, {c['high']:.1f}]"
    return text + (f" n={c['n']}" if n else "")


def effective_label(eff: Mapping[str, Any], lengths: Sequence[int]) -> str:
    if eff["length"] is None:
        return f"< {length_label(min(lengths))} (no tested length above the threshold)"
    text = (">" if eff["beyond"] else "") + length_label(eff["length"])
    span = [("< " + length_label(min(lengths))) if x is None else length_label(x) for x in (eff.get("low"), eff.get("high"))]
    if span[0] != span[1]:
        text += f" (interval ends: {span[0]} to {span[1]})"
    if eff.get("gaps"):
        text += f"; below the threshold at {', '.join(length_label(g) for g in eff['gaps'])}"
    return text


def table(mode: str, block: Mapping[str, Any], name: str = "") -> str:
    """RULER's table for one run and mode: task x length, the average, the effective length."""
    lengths = block["lengths"]
    head = "| task | " + " | ".join(length_label(n) for n in lengths) + " |\n|---|" + "---|" * len(lengths)
    rows = [f"| {task} | " + " | ".join(_cell(cells.get(str(n))) for n in lengths) + " |"
            for task, cells in block["tasks"].items()]
    avg = block["average"]
    rows.append("| **average** | " + " | ".join(
        _cell(avg.get(str(n)), n=False) + f" ({avg[str(n)]['n_tasks']} tasks)" for n in lengths) + " |")
    who = f" {name}" if name else ""
    notes = [f"Effective length{who}: {effective_label(block['effective_length'], lengths)}; threshold "
             f"{block['threshold']} ({block['threshold_source']}), RULER's rule: the longest length whose "
             f"average exceeds it. Mean over lengths: {block['mean']:.2f}."]
    if not block["complete"]:
        notes.append(f"Partial: {len(block['tasks'])} of RULER's 13 tasks; the average is not RULER's.")
    return (f"### RULER{who}, template mode {mode_label(mode)}\n\nScores x100 (RULER's string_match_all / "
            "string_match_part), [95% bootstrap interval], n samples per cell.\n\n" + head + "\n"
            + "\n".join(rows) + "\n\n" + " ".join(notes))


def markdown(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """Every RULER table of the given runs' summaries (empty when none has a ruler block)."""
    parts = [table(mode, block, name if len(summaries) > 1 else "")
             for name, s in summaries.items() for mode, block in (s.get("ruler") or {}).items()]
    return "## RULER\n\n" + "\n\n".join(parts) if parts else ""


def _scores(rows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str, int, float]]:
    """id#prompt hash -> (mode, task, length, score) of the RULER rows among `rows`."""
    out: dict[str, tuple[str, str, int, float]] = {}
    for row in rows:
        if is_ruler(row):
            r = row["meta"]["ruler"]
            out[f"{row['id']}#{r.get('sha')}"] = (str(r["mode"]), str(r["task"]), int(r["length"]), float(row["score"]))
    return out


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A run's predictions.jsonl (or a gzipped copy, .jsonl.gz); no rows when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _paired(groups: Sequence[np.ndarray], seed: int = 0) -> tuple[float, float, float]:
    """Mean over tasks of the per-task mean difference, with a bootstrap interval resampling the
    paired samples within each task (x100)."""
    rng = np.random.default_rng(seed)
    totals = np.zeros(RESAMPLES)
    for diffs in groups:
        idx = rng.integers(0, diffs.size, size=(RESAMPLES, diffs.size))
        totals += diffs[idx].mean(axis=1)
    means = totals / len(groups)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    point = float(np.mean([d.mean() for d in groups]))
    return point * 100, float(low) * 100, float(high) * 100


def _diff(point: float, low: float, high: float) -> str:
    mark = " *" if low > 0 or high < 0 else ""
    return f"{point:+.2f} [{low:+.1f}, {high:+.1f}]{mark}"


def paired_markdown(run_dirs: Sequence[Path], names: Sequence[str]) -> str:
    """Two eval runs' RULER tables side by side with paired differences (second - first)."""
    if len(run_dirs) != 2:
        return ""
    rows = [read_rows(Path(d) / "predictions.jsonl") for d in run_dirs]
    summaries = [json.loads((Path(d) / "scores.json").read_text(encoding="utf-8")).get("ruler") or {} for d in run_dirs]
    return paired_rows_markdown(rows, summaries, names)


def paired_rows_markdown(rows: Sequence[Sequence[Mapping[str, Any]]], summaries: Sequence[Mapping[str, Any]],
                         names: Sequence[str]) -> str:
    """Paired differences (second - first) per template mode from two runs' prediction rows and
    their `ruler` blocks; samples are matched by id, and a cell whose samples differ between the runs
    (another tokenizer builds other RULER data) is left unpaired."""
    a, b = (_scores(r) for r in rows)
    common = set(a) & set(b)
    if not common:
        return ""
    cells: dict[str, dict[int, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for key in sorted(common):
        mode, task, length, sa = a[key]
        cells[mode][length][task].append(b[key][3] - sa)
    parts = []
    for mode, by_length in sorted(cells.items()):
        lines = [f"### RULER {names[1]} - {names[0]}, template mode {mode_label(mode)}", "",
                 "Paired differences x100 over the same samples [95% paired bootstrap interval]; "
                 "* marks an interval excluding 0.", "",
                 f"| task | length | n | {names[0]} | {names[1]} | difference |", "|---|---|---|---|---|---|"]
        for length in sorted(by_length):
            groups = []
            for task, diffs in by_length[length].items():
                arr = np.asarray(diffs)
                groups.append(arr)
                sa, sb = (s.get(mode, {}).get("tasks", {}).get(task, {}).get(str(length), {}) for s in summaries)
                lines.append(f"| {task} | {length_label(length)} | {arr.size} | {sa.get('score', '-')} | {sb.get('score', '-')} "
                             f"| {_diff(*_paired([arr]))} |")
            avg = [s.get(mode, {}).get("average", {}).get(str(length), {}).get("score", "-") for s in summaries]
            lines.append(f"| **average** | {length_label(length)} | {sum(g.size for g in groups)} | {avg[0]} | {avg[1]} "
                         f"| {_diff(*_paired(groups))} |")
        effs = []
        for name, s in zip(names, summaries, strict=True):
            block = s.get(mode)
            if block:
                effs.append(f"{name} {effective_label(block['effective_length'], block['lengths'])}")
        lines += ["", "Effective length (threshold 85.6): " + "; ".join(effs) + "."]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def card_section(run_dir: Path) -> list[str]:
    """The dataset card's RULER section: the RULER tables of the run's evaluations (eval/*/), the
    base model first, and the paired differences when there are two (empty without RULER items)."""
    runs = sorted((p.parent for p in Path(run_dir).glob("eval/*/scores.json")), key=lambda p: (p.name != "base", p.name))
    summaries = {p.name: json.loads((p / "scores.json").read_text(encoding="utf-8")) for p in runs}
    summaries = {name: s for name, s in summaries.items() if s.get("ruler")}
    if not summaries:
        return []
    lines = ["## RULER", "", "RULER's 13 tasks from RULER's own generators, scored as RULER scores them "
             "(docs/ruler.md); from eval/" + ", eval/".join(summaries) + ".", ""]
    for name, s in summaries.items():
        for mode, block in s["ruler"].items():
            lines += [table(mode, block, name), ""]
    paired = paired_markdown([Path(run_dir) / "eval" / n for n in summaries], list(summaries))
    return lines + ([paired, ""] if paired else [])
