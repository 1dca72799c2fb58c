"""LongBench v1 as data: per-task prompt templates, metrics and output budgets, and a JSONL loader.

Templates live in templates/longbench.yaml (our own wording; placeholders {context} and {input}) and
a user file in the same layout overrides them per task. Loading turns each LongBench record
(input, context, answers, all_classes, length, dataset, _id) into an `EvalItem` whose `metric` names
a function of ctxsynth.eval.metrics, so the runner needs no task-specific code.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ctxsynth.errors import ConfigError, InputError
from ctxsynth.eval.hub import hub_records
from ctxsynth.eval.metrics import check_metric
from ctxsynth.io import read_user_jsonl
from ctxsynth.records import EvalItem

log = logging.getLogger(__name__)

TEMPLATES_FILE = Path(__file__).with_name("templates") / "longbench.yaml"
PROMPT_FILE = "dataset2prompt.json"  # the official mode's files, in the user's LongBench checkout
MAXLEN_FILE = "dataset2maxlen.json"

# The paper's 8 English tasks (PAPER.md section 5) and its three categories.
PAPER_CATEGORIES: dict[str, tuple[str, ...]] = {
    "single-doc": ("narrativeqa", "qasper"),
    "multi-doc": ("hotpotqa", "2wikimqa", "musique"),
    "summarization": ("gov_report", "qmsum", "multi_news"),
}
PAPER_TASKS: tuple[str, ...] = tuple(t for tasks in PAPER_CATEGORIES.values() for t in tasks)

# LongBench-E length buckets over the record's `length` field (words for English data).
LENGTH_BUCKETS: tuple[tuple[str, int, float], ...] = (
    ("0-4k", 0, 4000),
    ("4-8k", 4000, 8000),
    ("8k+", 8000, float("inf")),
)


@dataclass(frozen=True)
class TaskSpec:
    """How one LongBench task is prompted and scored."""

    name: str
    template: str
    metric: str
    max_new_tokens: int
    category: str
    first_line: bool = False  # few-shot tasks: score only the first line of the prediction
    chat: bool = True  # False: sent as plain text, without the chat template (official mode)
    official_chat: bool = True  # False: LongBench's pred.py sends the task as plain text (official mode)
    prompting: str = "ctxsynth"  # "official": LongBench's own prompt from the user's config files

    def render(self, context: str, question: str) -> str:
        return self.template.format_map({"context": context, "input": question})

    def render_record(self, record: Mapping[str, Any]) -> str:
        """The prompt of one LongBench record: LongBench's `template.format(**record)` in official
        mode, our {context}/{input} placeholders otherwise."""
        if self.prompting == "official":
            return self.template.format(**record)
        return self.render(record["context"], record.get("input") or "")


def _spec(name: str, entry: Mapping[str, Any]) -> TaskSpec:
    unknown = set(entry) - {"template", "metric", "max_new_tokens", "category", "first_line", "official_chat"}
    if unknown:
        raise InputError(f"task {name!r}: unknown keys {sorted(unknown)}")
    check_metric(str(entry["metric"]), f"task {name!r}")  # a typo fails at load, not after the model answered
    return TaskSpec(
        name=name,
        template=str(entry["template"]),
        metric=str(entry["metric"]),
        max_new_tokens=int(entry["max_new_tokens"]),
        category=str(entry.get("category", "other")),
        first_line=bool(entry.get("first_line", False)),
        official_chat=bool(entry.get("official_chat", True)),
    )


def load_task_specs(override: Path | None = None, base_file: Path = TEMPLATES_FILE) -> dict[str, TaskSpec]:
    """The task table of `base_file`, with entries of `override` (a YAML file) replacing or adding tasks.

    An override entry may be a bare string (a new template for a known task), a bare integer (a new
    max_new_tokens, as in LongBench's dataset2maxlen.json) or a mapping with any of template,
    metric, max_new_tokens, category, first_line.
    """
    base = yaml.safe_load(Path(base_file).read_text(encoding="utf-8"))
    specs = {name: _spec(name, entry) for name, entry in base.items()}
    if override is None:
        return specs
    user = yaml.safe_load(Path(override).read_text(encoding="utf-8")) or {}
    for name, entry in user.items():
        if isinstance(entry, str):
            entry = {"template": entry}
        elif isinstance(entry, int) and not isinstance(entry, bool):
            entry = {"max_new_tokens": entry}
        elif not isinstance(entry, Mapping):
            raise InputError(f"{override}: task {name!r}: expected a template string, a number of new tokens "
                             f"or a mapping, got {type(entry).__name__}")
        if name in specs:
            known = specs[name]
            merged = {
                "template": known.template, "metric": known.metric, "max_new_tokens": known.max_new_tokens,
                "category": known.category, "first_line": known.first_line,
                "official_chat": known.official_chat, **entry,
            }
            specs[name] = _spec(name, merged)
        elif "template" not in entry or "metric" not in entry:
            raise InputError(f"{override}: task {name!r} is not a known task, so it needs a template and a "
                             "metric (a mapping with template, metric, max_new_tokens)")
        else:
            specs[name] = _spec(name, entry)
    for spec in specs.values():
        if "{context}" not in spec.template:
            raise InputError(f"template of task {spec.name!r} lacks the {{context}} placeholder")
    return specs


def task_name(dataset: str, specs: Mapping[str, TaskSpec]) -> str:
    """LongBench-E records name their dataset like 'qasper_e'; both spellings map to one task."""
    if dataset in specs:
        return dataset
    if dataset.endswith("_e") and dataset[:-2] in specs:
        return dataset[:-2]
    raise KeyError(f"no template for LongBench dataset {dataset!r}; known: {', '.join(sorted(specs))}")


def record_to_item(record: Mapping[str, Any], spec: TaskSpec, source: str = "") -> EvalItem:
    answers = record["answers"]
    answers = [answers] if isinstance(answers, str) else [str(a) for a in answers]
    meta = {
        "dataset": record.get("dataset", spec.name),
        "category": spec.category,
        "length": record.get("length"),
        "all_classes": record.get("all_classes"),
        "first_line": spec.first_line,
        "chat": spec.chat,
        "prompting": spec.prompting,
        "source": source,
    }
    return EvalItem(
        id=str(record["_id"]),
        task=spec.name,
        prompt=spec.render_record(record),
        answers=answers,
        metric=spec.metric,
        max_new_tokens=spec.max_new_tokens,
        meta=meta,
    )


def _read_json_object(path: Path, value_type: type, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the config folder of your LongBench checkout "
                        f"(LongBench/config, which holds {PROMPT_FILE} and {MAXLEN_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object of task -> {what}")
    for task, value in data.items():
        if not isinstance(value, value_type) or isinstance(value, bool):
            raise InputError(f"{path}: task {task!r}: expected {what}, got {type(value).__name__}")
    return data


def load_official_specs(config_dir: Path | str) -> dict[str, TaskSpec]:
    """TaskSpecs of the official mode from LongBench's `dataset2prompt.json` and `dataset2maxlen.json`
    in `config_dir`: their prompt and output length, eval.py's metric, chat and first-line rules.

    Only tasks named in both files are loaded; the metric, category, first-line and chat rules come
    from templates/longbench.yaml (eval.py's dataset2metric and pred.py's plain-text tasks are
    written there); a task the table lacks is refused."""
    config_dir = Path(config_dir)
    prompts = _read_json_object(config_dir / PROMPT_FILE, str, "a prompt string")
    maxlens = _read_json_object(config_dir / MAXLEN_FILE, int, "a number of new tokens")
    ours = load_task_specs(base_file=TEMPLATES_FILE)  # eval.py's metric and pred.py's rules, per task
    specs: dict[str, TaskSpec] = {}
    for task, prompt in prompts.items():
        if task not in maxlens:
            log.warning("%s: task %r has a prompt but no entry in %s; skipped", config_dir, task, MAXLEN_FILE)
            continue
        if task not in ours:
            raise InputError(f"{config_dir / PROMPT_FILE}: task {task!r} is not a LongBench v1 task and has no "
                            "metric; score it with your own template file (longbench_templates) instead")
        known = ours[task]
        specs[task] = TaskSpec(
            name=task, template=prompt, metric=known.metric, max_new_tokens=maxlens[task], category=known.category,
            first_line=known.first_line, chat=known.official_chat, prompting="official",
        )
    if not specs:
        raise InputError(f"{config_dir}: no task is named in both {PROMPT_FILE} and {MAXLEN_FILE}")
    return specs


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in map(Path, paths):
        out.extend(sorted(path.glob("*.jsonl")) if path.is_dir() else [path])
    return out


def _hub_v1(specs: Sequence[str], tasks: Iterable[str] | None) -> Iterator[tuple[str, int, dict[str, Any]]]:
    if specs and tasks is None:
        raise ConfigError("LongBench from the Hub is loaded per task: name them in longbench_tasks "
                          "(e.g. [hotpotqa, 2wikimqa, musique])")
    for spec in specs:
        for task in tasks or ():
            for n, record in enumerate(hub_records(spec, task, "test"), 1):
                record.setdefault("dataset", task)
                yield f"{spec}:{task}", n, record


def load_longbench(
    paths: Iterable[Path],
    *,
    tasks: Iterable[str] | None = None,
    templates: Path | None = None,
    limit: int | None = None,
    official: Path | None = None,
    hub: Sequence[str] = (),
) -> list[EvalItem]:
    """Read LongBench v1 JSONL files (or folders of them) into EvalItems.

    `tasks` keeps only those tasks; `limit` keeps the first N records of each task (file order).
    `official` (the config folder of a LongBench checkout) prompts with LongBench's own files
    instead of our templates (ctxsynth.eval.longbench_official). `hub` names datasets for
    `load_dataset(spec, task, split="test")` (THUDM/LongBench), read for each of `tasks`.
    """
    if official is not None:
        if templates is not None:
            raise ConfigError("give either LongBench's config folder (official mode) or a template file, not both")
        specs = load_official_specs(official)
    else:
        specs = load_task_specs(templates)
    wanted = set(tasks) if tasks is not None else None
    items: list[EvalItem] = []
    per_task: dict[str, int] = {}
    local = ((path.name, line_no, record, path.stem) for path in _files(paths)
             for line_no, record in read_user_jsonl(path))
    hubbed = ((source, n, record, source) for source, n, record in _hub_v1(hub, tasks))
    for path, line_no, record, stem in itertools.chain(local, hubbed):
        dataset = record.get("dataset") or stem
        try:
            name = task_name(dataset, specs)
        except KeyError as err:
            raise InputError(f"{path}:{line_no}: {err.args[0]}") from None
        if wanted is not None and name not in wanted:
            continue
        if limit is not None and per_task.get(name, 0) >= limit:
            continue
        per_task[name] = per_task.get(name, 0) + 1
        try:
            items.append(record_to_item(record, specs[name], source=str(path)))
        except KeyError as err:
            raise InputError(f"{path}:{line_no}: the record lacks the field {err.args[0]!r} "
                             f"that the {name} prompt needs") from None
    log.info("loaded %d LongBench items: %s", len(items), per_task)
    return items


def length_bucket(length: float | int | None) -> str | None:
    """LongBench-E bucket name of a record length, or None when the record has no length."""
    if length is None:
        return None
    for name, low, high in LENGTH_BUCKETS:
        if low <= length < high:
            return name
    return None
