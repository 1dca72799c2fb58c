"""`eval:` in a run config: an evaluation job (ctxsynth.eval.job) whose model defaults to the run's
trained one; the stage that runs it is ctxsynth.eval.stage."""

from __future__ import annotations

from dataclasses import dataclass, field

from ctxsynth.eval.job import EvalConfig, ModelConfig


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
