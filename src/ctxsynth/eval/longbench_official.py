"""LongBench's official prediction path, driven by the user's own LongBench config files.

LongBench's pred.py prompts each task with `dataset2prompt.json[task].format(**record)`, generates
`dataset2maxlen.json[task]` new tokens, cuts the middle out of the tokenized prompt when it is longer
than the model's maximum length (`model2maxlen.json`; nothing is reserved for the output or for the
chat format), and wraps the prompt in the model's chat format except for six few-shot and code
tasks, which it sends as plain text (the tokenizer's BOS included). eval.py scores the first line
of the prediction for four tasks. This module holds those rules as data and the truncation; the
prompt texts are read from the user's checkout at run time and never shipped with ctxsynth.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ctxsynth.errors import UserError
from ctxsynth.eval.longbench import TEMPLATES_FILE, TaskSpec, load_task_specs
from ctxsynth.eval.truncation import FittedPrompt

log = logging.getLogger(__name__)

# eval.py's dataset2metric, under ctxsynth.eval.metrics names
TASK_METRICS: dict[str, str] = {
    "narrativeqa": "qa_f1", "qasper": "qa_f1", "multifieldqa_en": "qa_f1", "multifieldqa_zh": "qa_f1_zh",
    "hotpotqa": "qa_f1", "2wikimqa": "qa_f1", "musique": "qa_f1", "dureader": "rouge_l_zh",
    "gov_report": "rouge_l", "qmsum": "rouge_l", "multi_news": "rouge_l", "vcsum": "rouge_l_zh",
    "trec": "classification", "triviaqa": "qa_f1", "samsum": "rouge_l", "lsht": "classification",
    "passage_retrieval_en": "retrieval", "passage_count": "count", "passage_retrieval_zh": "retrieval_zh",
    "lcc": "code_sim", "repobench-p": "code_sim",
}
# pred.py sends these as plain text, without the chat format
NO_CHAT_TASKS: frozenset[str] = frozenset({"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"})
# eval.py scores only the first line of the prediction (after leading newlines) for these
FIRST_LINE_TASKS: frozenset[str] = frozenset({"trec", "triviaqa", "samsum", "lsht"})
# the 13 tasks of LongBench-E
LONGBENCH_E_TASKS: tuple[str, ...] = (
    "qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "gov_report", "multi_news", "trec", "triviaqa",
    "samsum", "passage_count", "passage_retrieval_en", "lcc", "repobench-p",
)
PROMPT_FILE = "dataset2prompt.json"
MAXLEN_FILE = "dataset2maxlen.json"


def _read_json_object(path: Path, value_type: type, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the config folder of your LongBench checkout "
                        f"(LongBench/config, which holds {PROMPT_FILE} and {MAXLEN_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object of task -> {what}")
    for task, value in data.items():
        if not isinstance(value, value_type) or isinstance(value, bool):
            raise UserError(f"{path}: task {task!r}: expected {what}, got {type(value).__name__}")
    return data


def load_official_specs(config_dir: Path | str) -> dict[str, TaskSpec]:
    """TaskSpecs of the official mode from LongBench's `dataset2prompt.json` and `dataset2maxlen.json`
    in `config_dir`: their prompt and output length, eval.py's metric, chat and first-line rules.

    Only tasks named in both files are loaded; tasks LongBench does not define keep their category
    from ctxsynth's table (or "other") and need a metric there, else they are refused."""
    config_dir = Path(config_dir)
    prompts = _read_json_object(config_dir / PROMPT_FILE, str, "a prompt string")
    maxlens = _read_json_object(config_dir / MAXLEN_FILE, int, "a number of new tokens")
    ours = load_task_specs(base_file=TEMPLATES_FILE)
    specs: dict[str, TaskSpec] = {}
    for task, prompt in prompts.items():
        if task not in maxlens:
            log.warning("%s: task %r has a prompt but no entry in %s; skipped", config_dir, task, MAXLEN_FILE)
            continue
        metric = TASK_METRICS.get(task) or (ours[task].metric if task in ours else None)
        if metric is None:
            raise UserError(f"{config_dir / PROMPT_FILE}: task {task!r} is not a LongBench v1 task and has no "
                            "metric; score it with your own template file (longbench_templates) instead")
        specs[task] = TaskSpec(
            name=task, template=prompt, metric=metric, max_new_tokens=maxlens[task],
            category=ours[task].category if task in ours else "other",
            first_line=task in FIRST_LINE_TASKS, chat=task not in NO_CHAT_TASKS, prompting="official",
        )
    if not specs:
        raise UserError(f"{config_dir}: no task is named in both {PROMPT_FILE} and {MAXLEN_FILE}")
    return specs


def truncate_middle(hf_tokenizer: Any, prompt: str, max_length: int) -> FittedPrompt:
    """pred.py's truncation: tokenize the prompt as the tokenizer does by default (BOS included
    when the tokenizer adds one); when that is longer than `max_length`, keep the first and the
    last int(max_length / 2) tokens, each half decoded on its own without special tokens and the
    two texts joined. Nothing is reserved for the chat format or the output.

    `prompt_tokens` is the length before the cut when nothing was cut, else the length of the two
    kept halves; the chat format, when used, adds its own tokens on top (as in pred.py).
    """
    if max_length < 2:
        raise UserError(f"the official max_length must be at least 2 tokens, not {max_length}")
    ids = list(hf_tokenizer(prompt, truncation=False)["input_ids"])
    if len(ids) <= max_length:
        return FittedPrompt(prompt, len(ids), 0)
    half = int(max_length / 2)
    text = (hf_tokenizer.decode(ids[:half], skip_special_tokens=True)
            + hf_tokenizer.decode(ids[-half:], skip_special_tokens=True))
    return FittedPrompt(text, 2 * half, len(ids) - 2 * half)
