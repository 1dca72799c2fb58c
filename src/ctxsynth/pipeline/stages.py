"""The stage table: the one list of stages (name, output folder, body, inputs, the config keys it
reads, whether it writes records, the models it asks) that the runner, the CLI, the reruns, the
report and the summary read.

The table is data: a body and a stage's model list are "module:function" strings, imported when the
stage runs, so this module imports no stage and every stage body may import the contract
(ctxsynth.pipeline.contract) and the run directory (ctxsynth.pipeline.run). Adding a stage is one
entry here plus its body in its own package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctxsynth.errors import ConfigError

# a body: (run, progress or None) -> the stage's stats; a model list: run config -> {config key: ModelSpec}
StageFunction = Callable[..., dict[str, Any]]


def load(target: str) -> Any:
    """The attribute a "module:function" string names."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Stage:
    name: str  # the CLI verb and the key in `stages:`
    folder: str  # output folder under the run directory
    body: str  # "module:function" of the body, run(run, progress) -> stats
    inputs: tuple[str, ...] = ()  # stages it reads; the first one the run includes (else the last) is read
    help: str = ""
    reads: tuple[str, ...] = ()  # config keys (dotted prefixes) its output depends on: a change reruns it
    # listed in `stages:` only by choice (not in the default list) and no per-stage CLI verb of its
    # own: `ctxsynth train` / `ctxsynth eval` take their own configs (ctxsynth.train.stage, ctxsynth.eval.stage)
    opt_in: bool = False
    writes_records: bool = False  # shard files of records (and rejected/ with reasons) in its folder
    models: str | None = None  # "module:function": config -> {config key: ModelSpec} of the chat models it asks

    @property
    def function(self) -> StageFunction:
        return load(self.body)  # type: ignore[no-any-return]

    def model_specs(self, config: Any) -> dict[str, Any]:
        return load(self.models)(config) if self.models else {}


STAGES: tuple[Stage, ...] = (
    Stage("seeds", "seeds", "ctxsynth.seeds.stage:run_seeds", (),
          "Read seeds (JSONL, Parquet, datasets, built-ins) into shards.", ("seeds", "shards"), writes_records=True),
    Stage("filter", "filter", "ctxsynth.filters.stage:run_filter", ("seeds",),
          "Drop ill-posed, duplicated, contaminated or closed-book seeds.", ("filters", "seed"), writes_records=True,
          models="ctxsynth.filters.stage:model_specs"),
    Stage("synthesize", "synth", "ctxsynth.synth.work:run_synthesize", ("filter", "seeds"),
          "Write and verify a context for every seed.", ("llm", "synth", "verify", "seed"), writes_records=True,
          models="ctxsynth.synth.work:model_specs"),
    Stage("assemble", "assemble", "ctxsynth.assemble.stage:run_assemble", ("synthesize",),
          "Gold context + distractors at the token budget.", ("assemble",), writes_records=True),
    Stage("export", "export", "ctxsynth.export.stage:run_export", ("assemble",),
          "Write the samples in the trainers' formats.", ("export",)),
    Stage("train", "train", "ctxsynth.train.stage:run_train", ("export",),
          "Fine-tune train.model on this run's export (resumes from its last checkpoint).", ("train",), opt_in=True),
    Stage("eval", "eval", "ctxsynth.eval.stage:run_evaluation", ("train",),
          "Evaluate the trained model and the base model on the eval sets; compare them.", ("eval",), opt_in=True),
    Stage("report", "report", "ctxsynth.report.stage:run_report", ("seeds", "filter", "synthesize", "assemble", "export"),
          "Write the dataset card and its plots.", ("report",)),
)
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
DEFAULT_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if not s.opt_in)
RECORD_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.writes_records)
BY_NAME = {s.name: s for s in STAGES}


def stage(name: str) -> Stage:
    if name not in BY_NAME:
        raise ConfigError(f"unknown stage {name!r}; known, in order: {', '.join(STAGE_NAMES)}")
    return BY_NAME[name]


def stage_folder(name: str) -> str:
    """The output folder of a stage under the run directory (e.g. synthesize -> synth)."""
    return stage(name).folder


def stages_from(name: str) -> list[str]:
    """`name` and every stage after it, in order."""
    return list(STAGE_NAMES[STAGE_NAMES.index(name):])
