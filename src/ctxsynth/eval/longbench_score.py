"""`ctxsynth score PRED_DIR`: score LongBench prediction files as LongBench's eval.py does.

A prediction folder holds one `<task>.jsonl` per task, each line {"pred", "answers", "all_classes",
"length"} as LongBench's pred.py writes it (from any inference stack). Per task: the metric of
eval.py, the first line of the prediction for trec/triviaqa/samsum/lsht, the best score over the
answers, the mean x100 rounded to 2 decimals; with `e`, the same per LongBench-E length bucket
(length < 4000, < 8000, the rest). Like eval.py, a task's `all_classes` is taken from its file's
last line. The scores go to result.json beside the files (eval.py's layout: {"task": score}).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxsynth.errors import UserError
from ctxsynth.eval import metrics
from ctxsynth.eval.longbench_official import FIRST_LINE_TASKS, TASK_METRICS
from ctxsynth.io import read_user_jsonl

log = logging.getLogger(__name__)

BUCKETS: tuple[str, ...] = ("0-4k", "4-8k", "8k+")
RESULT_FILE = "result.json"


@dataclass
class TaskPredictions:
    task: str
    predictions: list[str]
    answers: list[list[str]]
    lengths: list[float]
    all_classes: list[str] | None  # of the file's last line, as eval.py keeps it


def read_predictions(path: Path, need_length: bool = False) -> TaskPredictions:
    """One prediction file; a bad line fails with its file, line and field."""
    task = path.name.split(".")[0]
    preds: list[str] = []
    answers: list[list[str]] = []
    lengths: list[float] = []
    all_classes = None
    for line_no, row in read_user_jsonl(path):
        for field in ("pred", "answers"):
            if not isinstance(row, dict) or field not in row:
                raise UserError(f"{path}:{line_no}: no {field!r} field (LongBench prediction lines have pred, "
                                "answers, all_classes, length)")
        if need_length and not isinstance(row.get("length"), (int, float)):
            raise UserError(f"{path}:{line_no}: LongBench-E scoring needs a numeric 'length' field")
        preds.append(str(row["pred"]))
        refs = row["answers"]
        answers.append([refs] if isinstance(refs, str) else [str(r) for r in refs])
        if "length" in row:
            lengths.append(row["length"])
        all_classes = row.get("all_classes")
    if not preds:
        raise UserError(f"{path}: no predictions in the file")
    return TaskPredictions(task, preds, answers, lengths, all_classes)


def item_score(task: str, prediction: str, answers: Sequence[str], all_classes: Sequence[str] | None) -> float:
    """eval.py's score of one prediction: first line for the few-shot tasks, best over answers."""
    if task in FIRST_LINE_TASKS:
        prediction = prediction.lstrip("\n").split("\n")[0]
    return metrics.score(TASK_METRICS[task], prediction, answers, {"all_classes": all_classes or []})


def task_score(data: TaskPredictions) -> float:
    total = 0.0
    for prediction, answers in zip(data.predictions, data.answers, strict=True):
        total += item_score(data.task, prediction, answers, data.all_classes)
    return round(100 * total / len(data.predictions), 2)


def task_score_e(data: TaskPredictions) -> dict[str, float | None]:
    """Per LongBench-E bucket; an empty bucket is None (eval.py writes NaN there)."""
    import numpy as np

    cells: dict[str, list[float]] = {b: [] for b in BUCKETS}
    for prediction, answers, length in zip(data.predictions, data.answers, data.lengths, strict=True):
        bucket = "0-4k" if length < 4000 else "4-8k" if length < 8000 else "8k+"
        cells[bucket].append(item_score(data.task, prediction, answers, data.all_classes))
    return {b: round(100 * float(np.mean(v)), 2) if v else None for b, v in cells.items()}


def score_dir(pred_dir: Path | str, e: bool = False) -> dict[str, Any]:
    """Score every `<task>.jsonl` in `pred_dir` and write result.json there; returns {task: score}
    (with `e`, {task: {bucket: score}}), tasks in file-name order."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise UserError(f"{pred_dir}: no such folder (give the folder of <task>.jsonl prediction files)")
    files = sorted(p for p in pred_dir.iterdir() if p.name.endswith("jsonl"))
    if not files:
        raise UserError(f"{pred_dir}: no .jsonl prediction files")
    scores: dict[str, Any] = {}
    for path in files:
        task = path.name.split(".")[0]
        if task not in TASK_METRICS:
            raise UserError(f"{path}: {task!r} is not a LongBench task (file names are <task>.jsonl; known: "
                            f"{', '.join(sorted(TASK_METRICS))})")
        data = read_predictions(path, need_length=e)
        scores[task] = task_score_e(data) if e else task_score(data)
        log.debug("%s: %d predictions -> %s", task, len(data.predictions), scores[task])
    with open(pred_dir / RESULT_FILE, "w", encoding="utf-8") as f:
        json.dump(scores, f, ensure_ascii=False, indent=4)
    return scores


def write_prediction_files(rows: Sequence[dict[str, Any]], folder: Path) -> list[Path]:
    """Predictions of official-mode LongBench items as pred.py writes them (`<task>.jsonl`, lines
    {pred, answers, all_classes, length}), so `ctxsynth score` or LongBench's eval.py can read them."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        meta = row.get("meta") or {}
        if meta.get("prompting") == "official":
            by_task.setdefault(row["task"], []).append({
                "pred": row["prediction"], "answers": row["references"],
                "all_classes": meta.get("all_classes"), "length": meta.get("length"),
            })
    if not by_task:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for task, lines in by_task.items():
        path = folder / f"{task}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        tmp.replace(path)
        paths.append(path)
    return paths


def markdown_table(scores: dict[str, Any], e: bool = False) -> str:
    """The scores as a markdown table (x100), with the mean over tasks."""
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    if e:
        lines = ["| task | " + " | ".join(BUCKETS) + " |", "|---|" + "---|" * len(BUCKETS)]
        lines += [f"| {t} | " + " | ".join(fmt(s.get(b)) for b in BUCKETS) + " |" for t, s in scores.items()]
        return "\n".join(lines) + "\n"
    lines = ["| task | score |", "|---|---|"] + [f"| {t} | {fmt(s)} |" for t, s in scores.items()]
    lines.append(f"| mean over {len(scores)} tasks | {fmt(round(sum(scores.values()) / len(scores), 2))} |")
    return "\n".join(lines) + "\n"
