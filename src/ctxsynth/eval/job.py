"""`ctxsynth eval CONFIG`: one YAML names the model, the evaluation sets and the window.

Sets: NIAH test files written by `ctxsynth niah` (JSONL of EvalItem), LongBench v1 JSONL files or
folders the user provides, the offline built-ins (held-out HotpotQA multi-doc QA, SQuAD padded
to chosen lengths) and RULER's 13 tasks (`ruler:`). Results go to <out_dir>/<name>/: predictions.jsonl, scores.json, scores.md, plots.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxsynth.errors import ConfigError, PathNotFound
from ctxsynth.eval import longbench_v2 as v2
from ctxsynth.eval.metrics import check_metric
from ctxsynth.eval.ruler.tasks import RulerSets
from ctxsynth.io import read_jsonl
from ctxsynth.llm.spec import ModelSpec
from ctxsynth.records import EvalItem

log = logging.getLogger(__name__)


@dataclass
class ModelConfig(ModelSpec):
    """The evaluated model (`model:`): a ModelSpec plus how prompts are fitted to its window."""

    tokenizer: str | None = "smollm2"  # to count and truncate prompts; None sends prompts as they are
    max_model_len: int | None = 8192
    truncation: str = "middle"  # middle | left | none
    system_prompt: str | None = None


@dataclass
class BuiltinSets:
    hotpotqa: int = 0  # held-out HotpotQA dev-distractor questions (real 10-paragraph contexts)
    squad: int = 0  # held-out SQuAD questions, each padded to every length x depth below
    squad_lengths: list[int] = field(default_factory=lambda: [2048, 4096])
    squad_depths: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    squad_filler: str = "essays"  # essays | wiki


@dataclass
class EvalConfig:
    name: str
    out_dir: str = "runs/eval"
    model: ModelConfig = field(default_factory=ModelConfig)
    niah: list[str] = field(default_factory=list)  # NIAH test JSONL files or folders
    # any EvalItem JSONL files or folders, e.g. a built-in set frozen with `ctxsynth eval --write-items`
    items: list[str] = field(default_factory=list)
    # LongBench v1 JSONL files or folders; Hub ids for datasets.load_dataset (THUDM/LongBench with
    # longbench_tasks; THUDM/LongBench-v2), or "hf:<folder>" for a local folder load_dataset reads
    longbench: list[str] = field(default_factory=list)
    longbench_v2_prompts: str | None = None  # the prompts/ folder of your LongBench (v2) checkout
    longbench_v2_cot: bool = False  # LongBench v2 with chain of thought (pred.py --cot: two prompts)
    longbench_tasks: list[str] | None = None
    longbench_templates: str | None = None  # your template file (our layout; not comparable with published scores)
    # official mode: the config folder of your LongBench checkout (dataset2prompt.json, dataset2maxlen.json);
    # prompts, output lengths, truncation and chat rules as LongBench's pred.py (docs/longbench.md)
    longbench_official: str | None = None
    longbench_max_length: int | None = None  # official mode: model2maxlen.json's value; default model.max_model_len
    limit_per_task: int | None = None  # at most N items of each task, from every source (the first N in order)
    builtin: BuiltinSets = field(default_factory=BuiltinSets)
    # RULER's 13 tasks from RULER's own generators (ctxsynth.eval.ruler, docs/ruler.md)
    ruler: RulerSets = field(default_factory=RulerSets)  # off until ruler.tasks names tasks ([all])
    seed: int = 0
    # infrastructure failures in a row (or one auth/404 before any answer) that stop the eval with exit 2
    # instead of scoring the unanswered items as 0 (ctxsynth.llm.breaker)
    max_consecutive_failures: int = 20

    def __post_init__(self) -> None:
        if self.limit_per_task is not None and self.limit_per_task < 1:
            raise ConfigError(f"limit_per_task must be >= 1 (or unset for every item), got {self.limit_per_task}")
        if self.model.truncation not in ("middle", "left", "none"):
            raise ConfigError(f"model.truncation must be middle, left or none, not {self.model.truncation!r}")
        if self.longbench_official and self.longbench_templates:
            raise ConfigError("set longbench_official (LongBench's config folder) or longbench_templates, not both")
        if self.longbench_official and self.model.system_prompt:
            raise ConfigError("LongBench's official mode sends no system prompt: unset model.system_prompt")


def _item_files(paths: list[str], base: Path, what: str = "NIAH test set") -> list[EvalItem]:
    items: list[EvalItem] = []
    for p in paths:
        path = Path(p) if Path(p).is_absolute() else base / p
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        if not files or not all(f.exists() for f in files):
            raise PathNotFound(f"{what} {path}: no such file or no .jsonl files in the folder")
        for f in files:
            items.extend(EvalItem(**d) for d in read_jsonl(f))
    return items


def _resolve(path: str, base: Path) -> Path:
    return Path(path) if Path(path).is_absolute() else base / path


def _longbench_sources(config: EvalConfig, base: Path) -> tuple[list[str], list[str], list[Path]]:
    """`longbench:` entries as (v1 load_dataset specs, LongBench v2 specs, local v1 paths)."""
    from ctxsynth.eval.hub import hub_spec

    hub: list[str] = []
    v2: list[str] = []
    paths: list[Path] = []
    for entry in config.longbench:
        spec = hub_spec(entry, base)
        if spec is None:
            paths.append(_resolve(entry, base))
        else:
            (v2 if "longbench-v2" in spec.lower() else hub).append(spec)
    return hub, v2, paths


def collect_items(config: EvalConfig, base: Path) -> list[EvalItem]:
    from ctxsynth.eval import builtin, longbench

    items = _item_files(config.niah, base) + _item_files(config.items, base, what="evaluation item file")
    hub, v2, paths = _longbench_sources(config, base)
    if hub or paths:
        templates = Path(config.longbench_templates) if config.longbench_templates else None
        official = _resolve(config.longbench_official, base) if config.longbench_official else None
        items += longbench.load_longbench(paths, tasks=config.longbench_tasks, templates=templates,
                                          limit=config.limit_per_task, official=official, hub=hub)
    if v2:
        items += _v2_items(config, base, v2)
    b = config.builtin
    if b.hotpotqa:
        items += builtin.hotpotqa_items(b.hotpotqa, seed=config.seed)
    if b.squad:
        from ctxsynth.tokenize import load_tokenizer

        tok = load_tokenizer(config.model.tokenizer or "smollm2")
        items += builtin.squad_items(b.squad, lengths=b.squad_lengths, depths=b.squad_depths, tokenizer=tok,
                                     filler=b.squad_filler, seed=config.seed)  # type: ignore[arg-type]
    if config.ruler.tasks:
        from ctxsynth.eval.ruler.generate import build_items

        tokenizer = config.ruler.tokenizer or config.model.tokenizer
        if not tokenizer:
            raise ConfigError("ruler: RULER's data is built for the model's tokenizer: set model.tokenizer or ruler.tokenizer")
        items += build_items(config.ruler, tokenizer, max_model_len=config.model.max_model_len)
    if not items:
        raise ConfigError("the eval config names no evaluation set: set niah, items, longbench, builtin.* or ruler")
    if config.limit_per_task:  # item files, NIAH sets, built-in and RULER sets too, not only LongBench's loader
        taken: Counter[str] = Counter()
        kept = []
        for item in items:
            taken[item.task] += 1
            if taken[item.task] <= config.limit_per_task:
                kept.append(item)
        items = kept
    for task, metric in sorted({(item.task, item.metric) for item in items}):
        check_metric(metric, f"eval task {task!r}")  # before any model runs
    return items


def write_items(config: EvalConfig, path: Path, base: Path | None = None) -> int:
    """Write the config's evaluation items as EvalItem JSONL (no model runs): a frozen copy of the
    built-in sets for a machine without the asset packages, or an eval set to decontaminate against."""
    from ctxsynth.io import write_jsonl
    from ctxsynth.records import to_dict

    items = collect_items(config, Path(base or Path.cwd()))
    write_jsonl(path, (to_dict(item) for item in items))
    return len(items)


def run_eval(config: EvalConfig, base: Path | None = None, progress: Any = None) -> dict[str, Any]:
    from ctxsynth.eval.runner import evaluate
    from ctxsynth.eval.truncation import Truncation

    base = Path(base or Path.cwd())
    out = (Path(config.out_dir) if Path(config.out_dir).is_absolute() else base / config.out_dir) / config.name
    items = collect_items(config, base)
    m = config.model
    # behind the circuit breaker; evaluate() wraps it in the request cache under out/
    backend = m.build(max_consecutive_failures=config.max_consecutive_failures)
    truncation: Truncation = m.truncation  # type: ignore[assignment]  # checked in EvalConfig
    run = functools.partial(evaluate, backend=backend, tokenizer=m.tokenizer, max_model_len=m.max_model_len,
                            truncation=truncation, system_prompt=m.system_prompt, cache=out / "cache.sqlite",
                            progress=progress, official_max_length=config.longbench_max_length)
    try:
        cot = [i for i in items if i.meta.get("longbench_v2") == "cot"]
        if cot:  # LongBench v2 with chain of thought: the reasoning first, then the answer prompts
            run(cot, out_dir=out / "longbench_v2_cot", name=f"{config.name}-cot")
            rows = list(read_jsonl(out / "longbench_v2_cot" / "predictions.jsonl"))
            answers = _v2_cot_answers(config, base, _longbench_sources(config, base)[1], rows)
            items = [i for i in items if i.meta.get("longbench_v2") != "cot"] + answers
        summary: dict[str, Any] = run(items, out_dir=out, name=config.name)
    finally:
        backend.close()
    v2.write_pred_file(list(read_jsonl(out / "predictions.jsonl")), out / "longbench_v2_pred.jsonl")
    return summary


# --- `longbench:` entries that are LongBench v2 datasets (ctxsynth.eval.longbench_v2)


def _v2_records(config: EvalConfig, specs: Sequence[str]) -> list[dict[str, Any]]:
    from ctxsynth.eval.hub import hub_records

    records = [r for spec in specs for r in hub_records(spec, None, "train")]
    return records[: config.limit_per_task] if config.limit_per_task else records


def _v2_setup(config: EvalConfig, base: Path) -> tuple[dict[str, str], Any, int]:
    from ctxsynth.tokenize import load_tokenizer

    if not config.longbench_v2_prompts:
        raise ConfigError("LongBench v2 is prompted with its own files: set longbench_v2_prompts to the prompts/ "
                          "folder of your LongBench checkout")
    max_len = config.longbench_max_length or config.model.max_model_len
    if not config.model.tokenizer or max_len is None:
        raise ConfigError("LongBench v2 cuts prompts as its pred.py does: set model.tokenizer and "
                          "longbench_max_length (or model.max_model_len)")
    tok = load_tokenizer(config.model.tokenizer)
    if not hasattr(tok, "hf"):
        raise ConfigError("LongBench v2 needs the model's Hugging Face tokenizer (model.tokenizer)")
    prompts = Path(config.longbench_v2_prompts)
    return v2.load_prompts(prompts if prompts.is_absolute() else base / prompts), tok.hf, max_len


def _v2_items(config: EvalConfig, base: Path, specs: Sequence[str]) -> list[EvalItem]:
    """The first prompt of every question of the load_dataset `specs`."""
    prompts, hf, max_len = _v2_setup(config, base)
    return v2.records_to_items(_v2_records(config, specs), prompts, hf, max_len, cot=config.longbench_v2_cot)


def _v2_cot_answers(config: EvalConfig, base: Path, specs: Sequence[str],
                       rows: Sequence[Mapping[str, Any]]) -> list[EvalItem]:
    """The answer prompts of the chain-of-thought step from its reasoning rows (predictions)."""
    prompts, hf, max_len = _v2_setup(config, base)
    records = {str(r["_id"]): r for r in _v2_records(config, specs)}
    replies = {str(row["id"]).removesuffix("#cot"): str(row["prediction"]) for row in rows}
    return v2.cot_answer_items(records, replies, prompts, hf, max_len)
