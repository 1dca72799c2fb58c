"""The `train` stage: one run config goes on from `export` to a trained model.

`train:` is a RunTrainConfig (ctxsynth.train.config) whose defaults come from the run: it trains on
this run's export (`train.export_format`, trl_messages unless set) into <run>/train, and a killed
train resumes from its last checkpoint there. `ctxsynth train CONFIG` keeps its own config; this
stage reuses it. The evaluation that follows is ctxsynth.eval.stage.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctxsynth.errors import ConfigError, PathNotFound
from ctxsynth.models import is_embedded
from ctxsynth.tokenize import load_tokenizer
from ctxsynth.train.config import TrainConfig

if TYPE_CHECKING:
    from ctxsynth.pipeline.run import Run
    from ctxsynth.progress import Progress

MESSAGE_FORMATS = ("trl_messages", "longalign", "context_free")  # exports of {"messages": [...]} rows


def check_config(run: Run) -> None:
    """Config errors of the train stage when the run lists it (validate and preflight call this)."""
    c = run.config
    if "train" not in c.stages:
        return
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
        longest = longest_target(c.assemble.target_tokens)
        if longest is not None and longest > c.train.data.max_length:  # the run's own samples are the train data
            raise ConfigError(f"assemble.target_tokens={c.assemble.target_tokens} is longer than "
                              f"train.data.max_length={c.train.data.max_length}: the trainer would drop the samples "
                              "as too long after synthesis was paid for; lower the target or raise the training length")


def longest_target(target: int | list[int] | None) -> int | None:
    """The largest token target of `assemble.target_tokens` (a number, a [min, max] range, or None: a document count)."""
    if target is None:
        return None
    return max(target) if isinstance(target, list) else int(target)


def train_config(run: Run) -> TrainConfig:
    """The plain TrainConfig the train stage runs: the run's data, output folder and resumption."""
    rc = run.config.train
    values = {f.name: getattr(rc, f.name) for f in dataclasses.fields(TrainConfig)}
    files = [str(run.resolve(p)) for p in rc.data.train_files] or \
        [str(run.stage_dir("export") / rc.export_format / "data.jsonl")]
    values["data"] = dataclasses.replace(rc.data, train_files=files,
                                         general_files=[str(run.resolve(p)) for p in rc.data.general_files])
    values["output_dir"] = str(run.stage_dir("train"))
    values["resume_from_checkpoint"] = rc.resume_from_checkpoint or True  # a killed train goes on
    return TrainConfig(**values)


def run_train(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    from ctxsynth.train.recipe import train  # torch and trl load only here

    summary = train(train_config(run))
    marked = {"n_in": summary["long_samples"] + summary["general_samples"], "n_out": summary["rows"],
              **{k: summary[k] for k in ("global_step", "train_loss", "dropped_too_long", "final_dir")}}
    run.markers("train").mark_stage(marked)
    return marked


def model_path_problem(key: str, name: str) -> str | None:
    """Why `name` may not load as a local model (it is neither embedded nor a folder), or None."""
    if is_embedded(name) or Path(name).is_dir():
        return None
    return f"{key}: {name!r} is not a local folder; transformers will try the Hugging Face Hub when the stage starts"


def check_model(run: Run) -> list[str]:
    """train.model (the base model of the eval stage too) and its tokenizer; returns warnings."""
    tc = run.config.train
    problem = model_path_problem("train.model", tc.model)
    if tc.tokenizer or not problem:
        load_tokenizer(tc.tokenizer or tc.model)  # a bad local folder fails now, not after synthesis
    return [problem] if problem else []


def preflight_checks(run: Run) -> list[str]:
    """Before any work: the train stage's data files, model and tokenizer. Raises for what is
    certainly wrong; returns warnings."""
    check_config(run)
    warnings = check_model(run)
    data = run.config.train.data
    for i, path in enumerate(data.train_files + data.general_files):
        if not run.resolve(path).exists():
            raise PathNotFound(f"train.data: {run.resolve(path)} does not exist (file {i + 1} of the train and "
                               f"general files; relative paths resolve against {run.base_dir})")
    return warnings
