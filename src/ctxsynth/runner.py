"""One run = one directory: the run config, and running the stages that read and write shard folders.

    seeds -> filter -> synthesize -> assemble -> export [-> train -> eval] -> report

(train and eval run only when `stages:` lists them: ctxsynth.model_stages.)

Each stage writes shard files atomically and a completion marker per shard, then a DONE marker;
`run_all` skips finished stages and finished shards, and the request cache (cache.sqlite) makes a
half-finished shard cheap to redo. The stage table and the stage bodies are in ctxsynth.stages,
which this module imports (never the other way round).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctxsynth import config as cfg
from ctxsynth import rerun
from ctxsynth.assemble.config import AssembleConfig
from ctxsynth.errors import ConfigError
from ctxsynth.executors import Executor, ExecutorKind, RayConfig, build_executor
from ctxsynth.filters.config import FiltersConfig
from ctxsynth.io import Markers, atomic_write_text
from ctxsynth.llm.base import SamplingParams
from ctxsynth.llm.spec import ModelSpec, redact_config
from ctxsynth.model_stages import RunEvalConfig, RunTrainConfig
from ctxsynth.model_stages import check_config as check_model_stages
from ctxsynth.progress import Progress
from ctxsynth.seeds import SeedsConfig
from ctxsynth.stages import DEFAULT_STAGES, STAGE_NAMES, stage_folder
from ctxsynth.stages import stage as stage_entry
from ctxsynth.synth.stage import SynthConfig
from ctxsynth.verify.checks import VerifyConfig

log = logging.getLogger(__name__)

# where and how shards run: never part of the output (excluded from config_hash; a change reruns nothing)
EXECUTION_KEYS = ("executor", "workers", "shard_retries", "ray")
STAGES = STAGE_NAMES  # the names, in order; the table (folders, bodies, inputs) is ctxsynth.stages.STAGES


@dataclass
class LLMConfig(ModelSpec):
    """The synthesis model (`llm:`): a ModelSpec plus the sampling parameters of every request."""

    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 4096
    max_cost_usd: float | None = None  # stop (resumable) once this much is spent, priced by report.prices

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens)


@dataclass
class ExportConfig:
    formats: list[str] = field(default_factory=lambda: ["trl_messages", "trl_prompt_completion", "context_free"])
    mix_path: str | None = None  # a general SFT file (JSONL of messages or sharegpt) to mix in
    mix_ratio: float = 0.0  # general records per long sample
    dataset_name: str = "ctxsynth"  # LLaMA-Factory dataset_info.json entry
    license: str | None = None  # the cards' licence id; None = from the seed source (built-ins), else "other"
    language: list[str] = field(default_factory=lambda: ["en"])  # the cards' language codes
    push_to_hub: str | None = None  # a Hub dataset repo id: upload every format (one config each) + the card
    private: bool = True  # the Hub repo's visibility when push_to_hub creates it


@dataclass
class ReportConfig:
    # USD per million tokens by model, e.g. {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}
    prices: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class RunConfig:
    name: str
    out_dir: str = "runs"
    seed: int = 0
    shards: int = 1
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))  # train, eval: only when listed
    # circuit breaker: stop after this many infrastructure failures in a row (an auth or unknown-model
    # error before any success stops at once); the stage stays incomplete, the rerun resumes it
    max_consecutive_failures: int = 20
    # where shards run (ctxsynth.executors): serial (this process), local (worker processes), ray;
    # workers: shards at once (0: one per core, or the Ray cluster's CPUs); none changes output bytes
    executor: ExecutorKind = "local"
    workers: int = 0
    shard_retries: int = 1  # a shard that failed (not for a user error) or whose worker died runs again
    ray: RayConfig = field(default_factory=RayConfig)  # ray.address: an existing cluster; unset: start one
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    assemble: AssembleConfig = field(default_factory=AssembleConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    train: RunTrainConfig = field(default_factory=RunTrainConfig)  # the train stage (ctxsynth.model_stages)
    eval: RunEvalConfig = field(default_factory=RunEvalConfig)  # the eval stage

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ConfigError(f"stages: unknown stage(s) {unknown}; known, in order: {', '.join(STAGES)}")
        if [s for s in STAGES if s in self.stages] != list(self.stages):
            raise ConfigError(f"stages: {self.stages} are out of order or repeated; they run in this order: "
                              f"{', '.join(STAGES)}")
        if self.max_consecutive_failures < 1:
            raise ConfigError("max_consecutive_failures must be >= 1")
        if self.shards < 1:
            raise ConfigError("shards must be >= 1")
        if self.workers < 0 or self.shard_retries < 0:
            raise ConfigError("workers and shard_retries must be >= 0 (workers 0: one per core)")
        if not self.name or "/" in self.name:
            raise ConfigError(f"name {self.name!r} must be a non-empty folder name")


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ. Keys the old config lacks are not changes: they are options
    added by a newer ctxsynth, at their defaults, so an upgrade does not orphan a run directory."""
    changes = []
    for key, value in new.items():
        if key not in old:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(old[key], dict):
            changes += config_changes(old[key], value, path + ".")
        elif value != old[key]:
            changes.append(path)
    changes += [f"{prefix}{key}" for key in old if key not in new]
    return changes


# keys added after runs were made, with the value at which they hash as if absent: a config that
# leaves them there keeps the config_hash (written into export manifests) it had before they existed
HASHED_AS_ABSENT: dict[tuple[str, str], Any] = {("assemble", "random_draw"): "shuffle"}


class Run:
    """A run directory and its config; `base_dir` resolves relative paths in the config."""

    def __init__(self, config: RunConfig, base_dir: Path | None = None) -> None:
        self.config = config
        self.base_dir = Path(base_dir or Path.cwd())
        out = Path(config.out_dir)
        self.dir = (out if out.is_absolute() else self.base_dir / out) / config.name
        self.state = self.dir / "_state"
        self._executor: Executor | None = None

    def executor(self) -> Executor:
        """The run's executor, started on first use (a local Ray starts here) and kept for the run."""
        if self._executor is None:
            c = self.config
            self._executor = build_executor(c.executor, c.workers, c.ray)
        return self._executor

    def close_executor(self) -> None:
        """Stop the worker processes (and a Ray started for the run)."""
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def stage_dir(self, stage: str) -> Path:
        return self.dir / stage_folder(stage)

    def input_stage(self, stage: str) -> str:
        """The stage whose output `stage` reads: its first input stage that this run includes (else its last input)."""
        inputs = stage_entry(stage).inputs
        return next((s for s in inputs if s in self.config.stages), inputs[-1])

    def input_dir(self, stage: str) -> Path:
        """The folder a stage reads (see input_stage)."""
        return self.stage_dir(self.input_stage(stage))

    def markers(self, stage: str) -> Markers:
        return Markers(self.state, stage)

    def saved_view(self) -> dict[str, Any]:
        """The config as written to config.yaml: credentials inside any base_url replaced by ***."""
        return redact_config(cfg.to_dict(self.config))

    def config_hash(self) -> str:
        """Hash of the settings that can change output bytes (not out_dir, name, shards, the breaker,
        the spend limit)."""
        view = {k: v for k, v in self.saved_view().items()
                if k not in ("out_dir", "name", "shards", "max_consecutive_failures") + EXECUTION_KEYS}
        view["llm"] = {k: v for k, v in view.get("llm", {}).items() if k != "max_cost_usd"}
        for (section, key), default in HASHED_AS_ABSENT.items():
            if key in view.get(section, {}) and view[section][key] == default:
                view[section] = {k: v for k, v in view[section].items() if k != key}
        return hashlib.sha256(json.dumps(view, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]

    def prepare(self, overwrite: bool = False, force: str | None = None) -> None:
        """Create the run directory and save the resolved config. A config change reruns the first stage
        that reads a changed key and every later one: automatically when that is assemble or later (no
        requests are paid for), with --overwrite before. `force` invalidates a stage and every later one."""
        saved = self.dir / "config.yaml"
        view = self.saved_view()
        if saved.exists():
            old = cfg.load_yaml(saved)
            changed = config_changes(old, view)
            first = rerun.first_affected(changed, list(old.get("stages", STAGES)), self.config.stages)
            if first is not None and STAGES.index(first) < STAGES.index("assemble") and not overwrite:
                shown = ", ".join(changed[:8]) + (", ..." if len(changed) > 8 else "")
                raise cfg.ConfigError(
                    f"{self.dir} holds a run made with a different config ({saved}; changed: {shown}); choose "
                    f"another name, or pass --overwrite to discard the {first} stage and the ones after it "
                    "(the request cache is kept, so unchanged requests are not paid twice)")
            if first is not None:
                log.info("config changed (%s): %s and later stages will rerun", ", ".join(changed), first)
                self.invalidate(first)
        if force is not None:
            self.invalidate(stage_entry(force).name)
        self.check_seed_inputs()
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, yaml.safe_dump(view, sort_keys=False, allow_unicode=True))

    def invalidate(self, stage: str) -> None:
        """Discard the outputs and markers of `stage` and of every stage after it."""
        for name in rerun.stages_from(stage):
            shutil.rmtree(self.stage_dir(name), ignore_errors=True)
            shutil.rmtree(self.state / name, ignore_errors=True)

    def clear_outputs(self) -> None:
        self.invalidate(STAGES[0])
        shutil.rmtree(self.state, ignore_errors=True)

    def _seed_path(self) -> Path | None:
        from ctxsynth.seeds.sources import FILE_SOURCES

        s = self.config.seeds
        if s.source not in FILE_SOURCES or not s.path:
            return None
        return Path(s.path) if Path(s.path).is_absolute() else self.base_dir / s.path

    def record_seed_inputs(self) -> None:
        path = self._seed_path()
        if path is not None and path.exists():
            rerun.write_inputs(self.state / "seeds" / "inputs.json", rerun.seed_inputs(path))

    def check_seed_inputs(self) -> None:
        """A seed file changed since the seeds stage read it is an error that names it, never ignored."""
        recorded = self.state / "seeds" / "inputs.json"
        path = self._seed_path()
        if path is None or not recorded.exists() or not self.markers("seeds").stage_done():
            return
        changed = rerun.changed_inputs(json.loads(recorded.read_text()), rerun.seed_inputs(path))
        if changed:
            raise cfg.ConfigError(
                f"seed input changed since the seeds stage read it: {', '.join(changed[:5])}; rerun with "
                "--force seeds to read it again (later stages rerun too; cached requests are not paid twice)")


def run_stage(run: Run, stage: str, progress: Progress | None = None, force: bool = False,
              keep_executor: bool = False) -> dict[str, Any] | None:
    """Run one stage unless it is complete (force reruns it from scratch and invalidates later stages).
    The executor's workers stop at the end unless `keep_executor` (run_all keeps them for the next stage)."""
    markers = run.markers(stage)
    if force:
        run.invalidate(stage)
    if markers.stage_done():
        log.info("%s: already complete, skipped", stage)
        return None
    try:
        return stage_entry(stage).function(run, progress)
    finally:
        if not keep_executor:
            run.close_executor()


def run_all(run: Run, progress_factory=None) -> dict[str, Any]:
    results = {}
    try:
        for stage in run.config.stages:
            progress = progress_factory() if progress_factory else None
            results[stage] = run_stage(run, stage, progress, keep_executor=True)
    finally:
        run.close_executor()
    return results


def model_specs(config: RunConfig) -> dict[str, ModelSpec]:
    """Every chat model a run will ask, by its config key: synthesis and the enabled model filters."""
    specs: dict[str, ModelSpec] = {}
    if "synthesize" in config.stages and config.synth.task != "human":  # the human task asks no model
        specs["llm"] = config.llm
    if "filter" in config.stages:
        if config.filters.closed_book.enabled:
            specs["filters.closed_book.llm"] = config.filters.closed_book.llm
        if config.filters.judge.enabled:
            specs["filters.judge.llm"] = config.filters.judge.llm
    return specs


def validate_run(run: Run) -> list[str]:
    """Check names and options a run will use without calling a model; return warnings."""
    from ctxsynth.export import FORMATS
    from ctxsynth.synth.tasks import build_task

    c = run.config
    for fmt in c.export.formats:
        FORMATS.get(fmt)
    warnings: list[str] = []
    for where, spec in model_specs(c).items():
        spec.check(where)  # backend name, option names and types
        problem = spec.missing_key()
        if problem:
            warnings.append(f"{where}: {problem}")
    check_model_stages(run)  # train and eval sections, when those stages are listed
    build_task(c.synth, c.seed)  # unknown task names, prompt files and genres fail here
    if c.executor == "ray" and importlib.util.find_spec("ray") is None:
        warnings.append("executor: ray needs Ray installed: pip install 'ctxsynth[ray]'")
    if c.synth.prefill and not getattr(c.llm.backend_class(), "prefill", False):
        raise ConfigError(f"synth.prefill needs a backend that continues a prefilled reply (transformers); "
                          f"llm.backend {c.llm.backend!r} cannot: set synth.prefill=false")
    if c.synth.task in ("context", "multidoc") and c.llm.max_tokens < c.synth.target_words * 1.4:
        warnings.append(
            f"llm.max_tokens={c.llm.max_tokens} may truncate documents of {c.synth.target_words} words "
            f"(about {int(c.synth.target_words * 1.4)} tokens)"
        )
    return warnings
