"""Validation and preflight: check a whole run config before paid work, in seconds.

`validate_run` (`ctxsynth validate`, and the first step of preflight) checks names and options
without calling a model. `preflight` (`ctxsynth run`, skipped with `--no-preflight`) checks only the
stages still to run: every model spec they use (backend, option names and types, the API key), the
tokenizer, the input paths (said resolved against what), the train and eval stages' models and
files, and one cheap probe per endpoint, done by the backend itself (`Backend.probe`: GET /models
for the OpenAI protocol). A typo in a backend name or a bad tokenizer used to surface only after the
seeds stage or after synthesis.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from ctxsynth.assemble.distractors import missing_dependency
from ctxsynth.errors import ConfigError, MissingDependency, PathNotFound
from ctxsynth.eval.stage import check_config as check_eval
from ctxsynth.eval.stage import preflight_checks as eval_preflight
from ctxsynth.export.formats import FORMATS
from ctxsynth.llm.spec import ModelSpec
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.run import Run
from ctxsynth.pipeline.stages import STAGES, stages_from
from ctxsynth.seeds.sources import FILE_SOURCES
from ctxsynth.synth.tasks import build_task
from ctxsynth.tokenize import load_tokenizer
from ctxsynth.train.stage import check_config as check_train
from ctxsynth.train.stage import preflight_checks as train_preflight

log = logging.getLogger(__name__)


def model_specs(config: RunConfig, stages: list[str] | None = None) -> dict[str, ModelSpec]:
    """Every chat model the run's stages (or `stages`) ask, by config key, as each stage declares them."""
    chosen = config.stages if stages is None else stages
    specs: dict[str, ModelSpec] = {}
    for entry in STAGES:
        if entry.name in chosen:
            specs.update(entry.model_specs(config))
    return specs


def validate_run(run: Run) -> list[str]:
    """Check names and options a run will use without calling a model; return warnings."""
    c = run.config
    for fmt in c.export.formats:
        FORMATS.get(fmt)
    warnings: list[str] = []
    for where, spec in model_specs(c).items():
        spec.check(where)  # backend name, option names and types
        problem = spec.missing_key()
        if problem:
            warnings.append(f"{where}: {problem}")
    check_train(run)  # train and eval sections, when those stages are listed
    check_eval(run)
    build_task(c.synth, c.seed)  # unknown task names, prompt files and genres fail here
    if c.executor == "ray" and importlib.util.find_spec("ray") is None:
        warnings.append("executor: ray needs Ray installed: pip install 'ctxsynth[ray]'")
    if c.synth.prefill and not c.llm.backend_class().prefill:
        raise ConfigError(f"synth.prefill needs a backend that continues a prefilled reply (transformers); "
                          f"llm.backend {c.llm.backend!r} cannot: set synth.prefill=false")
    if c.synth.task in ("context", "multidoc") and c.llm.max_tokens < c.synth.target_words * 1.4:
        warnings.append(
            f"llm.max_tokens={c.llm.max_tokens} may truncate documents of {c.synth.target_words} words "
            f"(about {int(c.synth.target_words * 1.4)} tokens)"
        )
    return warnings


def pending_stages(run: Run, force: str | None = None) -> list[str]:
    forced = stages_from(force) if force else []
    return [s for s in run.config.stages if s in forced or not run.markers(s).stage_done()]


def preflight(run: Run, probe: bool = True, force: str | None = None) -> list[str]:
    """Raise a UserError for the first problem; return warnings (as `validate` does)."""
    warnings = validate_run(run)  # names, options, formats, task files
    pending = pending_stages(run, force)
    specs = model_specs(run.config, pending)
    for where, spec in specs.items():
        spec.check(where, need_key=True)
    check_paths(run, pending)
    if {"assemble", "export"} & set(pending):
        load_tokenizer(run.config.assemble.tokenizer)  # a bad tokenizer fails now, not after synthesis
    if "assemble" in pending and (problem := missing_dependency(run.config.assemble.distractors)):
        raise MissingDependency(problem)  # a missing retrieval library fails now, not after synthesis
    if "train" in pending:
        warnings += train_preflight(run)  # data files, model and tokenizer
    if "eval" in pending:  # the eval model's spec and key, tokenizer and files; the base model is train.model
        warnings += eval_preflight(run, with_base=run.config.eval.base and "train" not in pending)
    if probe:
        probed: set[tuple[str, str]] = set()
        for where, spec in specs.items():
            if (spec.endpoint(), spec.model) not in probed:
                probed.add((spec.endpoint(), spec.model))
                warnings.append(spec.backend_class().probe(spec.model, spec.options, where, spec.endpoint()) or "")
    return [w for w in warnings if w and "needs an API key" not in w]


def resolved(run: Run, value: str, key: str) -> Path:
    """The config path `value`, resolved; PathNotFound (saying against what) when it does not exist."""
    full = run.resolve(value)
    if not full.exists():
        against = "" if Path(value).is_absolute() else \
            f" (relative paths resolve against the directory you ran from, {run.base_dir})"
        raise PathNotFound(f"{key}: {full} does not exist{against}")
    return full


def check_paths(run: Run, pending: list[str]) -> None:
    c = run.config
    if "seeds" in pending and c.seeds.source in FILE_SOURCES and c.seeds.path:
        resolved(run, c.seeds.path, "seeds.path")
    if "export" in pending and c.export.mix_path:
        resolved(run, c.export.mix_path, "export.mix_path")
    if "filter" in pending and c.filters.decontam.enabled:
        for i, path in enumerate(c.filters.decontam.eval_files):
            resolved(run, path, f"filters.decontam.eval_files[{i}]")
