"""The `eval` stage: the trained model (or `eval.model.model`) and the base model on the eval sets.

`eval:` is a RunEvalConfig (ctxsynth.eval.config): an evaluation job (ctxsynth.eval.job) whose
model is the trained <run>/train/final unless `eval.model.model` names another; with `eval.base`
(default) the same items are also run through `train.model`, and eval/comparison.md/.json hold both
scores with 95% bootstrap intervals and the paired difference (ctxsynth.eval.stats). The card shows
it. `ctxsynth eval CONFIG` keeps its own config; this stage reuses it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctxsynth.errors import ConfigError, PathNotFound
from ctxsynth.eval.compare import compare
from ctxsynth.eval.hub import hub_spec
from ctxsynth.eval.job import run_eval
from ctxsynth.eval.stats import bootstrap, paired_difference
from ctxsynth.io import atomic_write_text, read_jsonl
from ctxsynth.tokenize import load_tokenizer
from ctxsynth.train.stage import check_model

if TYPE_CHECKING:
    from ctxsynth.pipeline.run import Run
    from ctxsynth.progress import Progress

log = logging.getLogger(__name__)


def check_config(run: Run) -> None:
    """Config errors of the eval stage when the run lists it (validate and preflight call this)."""
    c = run.config
    if "eval" not in c.stages:
        return
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


def preflight_checks(run: Run, with_base: bool) -> list[str]:
    """Before any work: the eval stage's model spec (and key), tokenizer and evaluation files, and
    the base model (train.model) when `with_base` and the train stage does not check it. Raises for
    what is certainly wrong; returns warnings."""
    check_config(run)
    c = run.config
    warnings = check_model(run) if with_base else []
    c.eval.model.check("eval.model", need_key=True)
    if c.eval.model.tokenizer:  # empty: each model's own (the trained folder's, train.model's)
        load_tokenizer(c.eval.model.tokenizer)
    for key in ("niah", "items", "longbench"):
        for i, path in enumerate(getattr(c.eval, key)):
            if key == "longbench" and hub_spec(path, run.base_dir) is not None:
                continue  # a Hub id (or hf:<folder>): datasets.load_dataset finds it
            if not run.resolve(path).exists():
                raise PathNotFound(f"eval.{key}[{i}]: {run.resolve(path)} does not exist (relative paths "
                                   f"resolve against the directory you ran from, {run.base_dir})")
    return warnings


def summary_line(run_dir: Path) -> str | None:
    """One line for the end-of-run summary: the trained model against the base, over all items."""
    path = Path(run_dir) / "eval" / "comparison.json"
    if not path.exists():
        return None
    b = json.loads(path.read_text(encoding="utf-8"))["overall"]
    return (f"trained vs base model (x100, 95% intervals, n={b['n']} items): base {_fmt(b['base'])}, "
            f"trained {_fmt(b['trained'])}, difference {_fmt(b['difference'])} (eval/comparison.md)")
