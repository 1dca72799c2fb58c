"""The `train` and `eval` stages: one run config goes on from `export` to a trained, evaluated model.

`train:` is a TrainConfig (ctxsynth.train.config) whose defaults come from the run: it trains on this
run's export (`train.export_format`, trl_messages unless set) into <run>/train, and a killed train
resumes from its last checkpoint there. `eval:` is an evaluation job (ctxsynth.eval.job) whose model
is the trained <run>/train/final unless `eval.model.model` names another; with `eval.base` (default)
the same items are also run through `train.model`, and eval/comparison.md/.json hold both scores
with 95% bootstrap intervals and the paired difference (ctxsynth.eval.stats). The card shows it.

`ctxsynth train CONFIG` and `ctxsynth eval CONFIG` keep their own configs; these stages reuse them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctxsynth.errors import ConfigError
from ctxsynth.eval.job import EvalConfig, ModelConfig
from ctxsynth.io import atomic_write_text, read_jsonl
from ctxsynth.train.config import TrainConfig

if TYPE_CHECKING:
    from ctxsynth.progress import Progress
    from ctxsynth.runner import Run

log = logging.getLogger(__name__)
MESSAGE_FORMATS = ("trl_messages", "longalign", "context_free")  # exports of {"messages": [...]} rows


@dataclass
class RunTrainConfig(TrainConfig):
    """`train:` in a run config: a TrainConfig; data and output default to this run's."""

    output_dir: str = ""  # always <run>/train in a run (its checkpoints are the stage's to resume or discard)
    export_format: str = "trl_messages"  # which of this run's exports to train on (data.train_files empty)


@dataclass
class RunEvalModel(ModelConfig):
    """`eval.model:` in a run config: an eval job's model whose model and tokenizer default to the run's."""

    model: str = ""  # empty: the trained <run>/train/final (with `backend`, transformers by default)
    tokenizer: str | None = ""  # empty: each evaluated model's own (the trained folder's; train.tokenizer or train.model)


@dataclass
class RunEvalConfig(EvalConfig):
    """`eval:` in a run config: an evaluation job; the model defaults to the trained one."""

    name: str = "trained"
    out_dir: str = ""  # always <run>/eval
    model: RunEvalModel = field(default_factory=RunEvalModel)
    base: bool = True  # also evaluate train.model on the same items and compare


def check_config(run: Run) -> None:
    """Config errors of the train and eval stages a run lists (validate and preflight call this)."""
    c = run.config
    if "train" in c.stages:
        if c.train.output_dir:
            raise ConfigError("train.output_dir: a run trains into <run>/train; remove the key "
                              "(use `ctxsynth train CONFIG` for another folder)")
        if not c.train.data.train_files:
            if c.train.export_format not in MESSAGE_FORMATS:
                raise ConfigError(f"train.export_format: {c.train.export_format!r} is not one the trainer reads; "
                                  f"use one of {', '.join(MESSAGE_FORMATS)}")
            if c.train.export_format not in c.export.formats:
                raise ConfigError(f"train.export_format: {c.train.export_format!r} is not in export.formats "
                                  f"{c.export.formats}; add it there or pick one of them")
    if "eval" in c.stages:
        if c.eval.out_dir:
            raise ConfigError("eval.out_dir: a run evaluates into <run>/eval; remove the key")
        if c.eval.base and c.eval.name == "base":
            raise ConfigError("eval.name: 'base' is the base model's folder (eval.base); choose another name")
        if not c.eval.model.model and "train" not in c.stages:
            raise ConfigError("eval.model.model: without the train stage in stages, name the model to evaluate")
        if c.eval.model.model and c.eval.model.tokenizer == "":
            raise ConfigError("eval.model.tokenizer: set it (a local folder, 'smollm2', or null to send prompts "
                              "uncut) when eval.model.model names the model to evaluate")
        if not c.eval.model.model and c.train.lora.enabled:
            raise ConfigError("eval.model.model: the train stage saves a LoRA adapter (train.lora.enabled), which "
                              "the eval backends do not load; merge it and name the merged folder here")
        if not (c.eval.niah or c.eval.items or c.eval.longbench or c.eval.builtin.hotpotqa or c.eval.builtin.squad
                or c.eval.ruler.tasks):
            raise ConfigError("eval: name an evaluation set (eval.items, eval.niah, eval.longbench, eval.builtin.* "
                              "or eval.ruler)")
        c.eval.model.check("eval.model")


def _path(run: Run, value: str) -> str:
    return value if Path(value).is_absolute() else str(run.base_dir / value)


def train_config(run: Run) -> TrainConfig:
    """The plain TrainConfig the train stage runs: the run's data, output folder and resumption."""
    rc = run.config.train
    values = {f.name: getattr(rc, f.name) for f in dataclasses.fields(TrainConfig)}
    files = [_path(run, p) for p in rc.data.train_files] or \
        [str(run.stage_dir("export") / rc.export_format / "data.jsonl")]
    values["data"] = dataclasses.replace(rc.data, train_files=files,
                                         general_files=[_path(run, p) for p in rc.data.general_files])
    values["output_dir"] = str(run.stage_dir("train"))
    values["resume_from_checkpoint"] = rc.resume_from_checkpoint or True  # a killed train goes on
    return TrainConfig(**values)


def run_train(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    from ctxsynth.train.recipe import train

    summary = train(train_config(run))
    marked = {"n_in": summary["long_samples"] + summary["general_samples"], "n_out": summary["rows"],
              **{k: summary[k] for k in ("global_step", "train_loss", "dropped_too_long", "final_dir")}}
    run.markers("train").mark_stage(marked)
    return marked


def eval_targets(run: Run) -> list[tuple[str, str, str | None]]:
    """(label, model, tokenizer) of every evaluation the stage runs: the trained model, then the base."""
    ec, tc = run.config.eval, run.config.train
    trained = ec.model.model or str(run.stage_dir("train") / "final")
    own = ec.model.tokenizer != ""
    targets = [(ec.name, trained, ec.model.tokenizer if own else trained)]
    if ec.base:
        targets.append(("base", tc.model, ec.model.tokenizer if own else tc.tokenizer or tc.model))
    return targets


def run_evaluation(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    """Evaluate each target (one shard marker each, so a finished one is not redone), then compare."""
    from ctxsynth.eval.job import run_eval

    ec = run.config.eval
    out = run.stage_dir("eval")
    markers = run.markers("eval")
    targets = eval_targets(run)
    for i, (label, model, tokenizer) in enumerate(targets):
        if markers.shard_done(i):
            continue
        spec = dataclasses.replace(ec.model, model=model, tokenizer=tokenizer)
        job = dataclasses.replace(ec, name=label, out_dir=str(out), model=spec)
        scores = run_eval(job, base=run.base_dir, progress=progress)
        markers.mark_shard(i, {"n_in": scores["n_items"], "n_out": scores["n_items"], "model": model})
    summary: dict[str, Any] = {"n_in": sum(s.get("n_in", 0) for s in markers.shard_stats()),
                               "runs": [target[0] for target in targets]}
    if len(targets) == 2:
        comparison = write_comparison(out, base=targets[1][0], trained=targets[0][0])
        summary["difference"] = comparison["overall"]["difference"]
    markers.mark_stage(summary)
    return summary


def item_scores(run_dir: Path) -> dict[str, tuple[str, float]]:
    """{task/id: (task, score)} from an evaluation folder's predictions.jsonl."""
    return {f"{r['task']}/{r['id']}": (str(r["task"]), float(r["score"])) for r in read_jsonl(run_dir / "predictions.jsonl")}


def _block(base: dict[str, float], trained: dict[str, float]) -> dict[str, Any]:
    from ctxsynth.eval.stats import bootstrap, paired_difference

    ids = sorted(base)
    est = {"base": bootstrap([base[i] for i in ids]), "trained": bootstrap([trained[i] for i in ids]),
           "difference": paired_difference(base, trained)}
    return {k: dataclasses.asdict(v) for k, v in est.items()} | {"n": len(ids)}


def compare_scores(base_dir: Path, trained_dir: Path) -> dict[str, Any]:
    """Overall and per-task means of both runs with 95% intervals, and the paired difference."""
    base, trained = item_scores(base_dir), item_scores(trained_dir)
    result: dict[str, Any] = {"overall": _block({k: v for k, (_, v) in base.items()},
                                                {k: v for k, (_, v) in trained.items()}), "tasks": {}}
    for task in sorted({t for t, _ in base.values()}):
        keys = [k for k, (t, _) in base.items() if t == task]
        result["tasks"][task] = _block({k: base[k][1] for k in keys}, {k: trained[k][1] for k in keys})
    return result


def _fmt(e: dict[str, Any]) -> str:
    return f"{100 * e['mean']:.1f} [{100 * e['low']:.1f}, {100 * e['high']:.1f}]"


def comparison_markdown(result: dict[str, Any], trained: str) -> list[str]:
    lines = [f"Scores x100, mean [95% bootstrap interval over items]; the difference is {trained} - base, "
             "with a paired bootstrap interval (10,000 resamples).", "",
             f"| task | n | base | {trained} | difference |", "|---|---|---|---|---|"]
    rows = [("all", result["overall"])] + list(result["tasks"].items())
    for task, b in rows:
        lines.append(f"| {task} | {b['n']} | {_fmt(b['base'])} | {_fmt(b['trained'])} | {_fmt(b['difference'])} |")
    return lines


def write_comparison(out: Path, base: str, trained: str) -> dict[str, Any]:
    """eval/comparison.json and comparison.md (the scores table plus ctxsynth.eval.compare's tables)."""
    from ctxsynth.eval.compare import compare

    result = compare_scores(out / base, out / trained)
    result["runs"] = {"base": base, "trained": trained}
    atomic_write_text(out / "comparison.json", json.dumps(result, indent=2, sort_keys=True) + "\n")
    tables = compare([out / base, out / trained], names=[base, trained]).markdown
    atomic_write_text(out / "comparison.md", "\n".join(comparison_markdown(result, trained)) + "\n\n" + tables)
    return result


def card_section(run_dir: Path) -> list[str]:
    """The card's section on the trained model (empty when the eval stage has not compared)."""
    path = Path(run_dir) / "eval" / "comparison.json"
    if not path.exists():
        return []
    result = json.loads(path.read_text(encoding="utf-8"))
    trained = result["runs"]["trained"]
    return ["## Trained model vs base", "",
            f"Trained on this run's export (train/), evaluated next to the base model (eval/{trained}, "
            "eval/base; details in eval/comparison.md).", ""] + comparison_markdown(result, trained) + [""]


def _model_path_problem(key: str, name: str) -> str | None:
    from ctxsynth.models import is_embedded

    if is_embedded(name) or Path(name).is_dir():
        return None
    return f"{key}: {name!r} is not a local folder; transformers will try the Hugging Face Hub when the stage starts"


def _check_train_model(run: Run, warnings: list[str]) -> None:
    from ctxsynth.tokenize import load_tokenizer

    tc = run.config.train
    problem = _model_path_problem("train.model", tc.model)
    warnings.append(problem or "")
    if tc.tokenizer or not problem:
        load_tokenizer(tc.tokenizer or tc.model)  # a bad local folder fails now, not after synthesis


def preflight_checks(run: Run, pending: list[str]) -> list[str]:
    """Before any work: the train stage's data files, model and tokenizer; the eval stage's model
    spec (and key), tokenizer and evaluation files. Raises for what is certainly wrong; returns warnings."""
    from ctxsynth.errors import PathNotFound
    from ctxsynth.eval.longbench import hub_spec
    from ctxsynth.tokenize import load_tokenizer

    check_config(run)
    c = run.config
    warnings: list[str] = []
    if "train" in pending or ("eval" in pending and c.eval.base):  # the base model is train.model
        _check_train_model(run, warnings)
    if "train" in pending:
        for i, path in enumerate(c.train.data.train_files + c.train.data.general_files):
            if not Path(_path(run, path)).exists():
                raise PathNotFound(f"train.data: {_path(run, path)} does not exist (file {i + 1} of the train and "
                                   f"general files; relative paths resolve against {run.base_dir})")
    if "eval" in pending:
        c.eval.model.check("eval.model", need_key=True)
        if c.eval.model.tokenizer:  # empty: each model's own (the trained folder's, train.model's)
            load_tokenizer(c.eval.model.tokenizer)
        for key in ("niah", "items", "longbench"):
            for i, path in enumerate(getattr(c.eval, key)):
                if key == "longbench" and hub_spec(path, run.base_dir) is not None:
                    continue  # a Hub id (or hf:<folder>): datasets.load_dataset finds it
                if not Path(_path(run, path)).exists():
                    raise PathNotFound(f"eval.{key}[{i}]: {_path(run, path)} does not exist (relative paths "
                                       f"resolve against the directory you ran from, {run.base_dir})")
    return [w for w in warnings if w]


def summary_line(run_dir: Path) -> str | None:
    """One line for the end-of-run summary: the trained model against the base, over all items."""
    path = Path(run_dir) / "eval" / "comparison.json"
    if not path.exists():
        return None
    b = json.loads(path.read_text(encoding="utf-8"))["overall"]
    return (f"trained vs base model (x100, 95% intervals, n={b['n']} items): base {_fmt(b['base'])}, "
            f"trained {_fmt(b['trained'])}, difference {_fmt(b['difference'])} (eval/comparison.md)")
