"""One run = one directory: the run config, and the stages that read and write shard folders.

    seeds -> synthesize -> assemble -> export -> report

Each stage writes shard files atomically and a completion marker per shard, then a DONE marker;
`run_all` skips finished stages and finished shards, and the request cache (cache.sqlite) makes a
half-finished shard cheap to redo. Stage bodies are in ctxsynth.stages.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxsynth import config as cfg
from ctxsynth.assemble.config import AssembleConfig
from ctxsynth.filters.config import FiltersConfig
from ctxsynth.io import Markers, atomic_write_text, read_jsonl, shard_name
from ctxsynth.progress import Progress
from ctxsynth.records import seed_from_dict
from ctxsynth.seeds import SeedsConfig
from ctxsynth.synth.stage import SynthConfig
from ctxsynth.verify.checks import VerifyConfig

log = logging.getLogger(__name__)

STAGES = ("seeds", "filter", "synthesize", "assemble", "export", "report")


@dataclass
class LLMConfig:
    backend: str = "transformers"  # openai | transformers | fake
    model: str = "smollm2-135m-instruct"
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 4096
    options: dict[str, Any] = field(default_factory=dict)  # backend keyword arguments (base_url, batch_size, ...)
    max_cost_usd: float | None = None  # stop (resumable) once this much is spent, priced by report.prices


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
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    assemble: AssembleConfig = field(default_factory=AssembleConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"stages: unknown stage(s) {unknown}; known, in order: {', '.join(STAGES)}")
        if self.shards < 1:
            raise ValueError("shards must be >= 1")
        if not self.name or "/" in self.name:
            raise ValueError(f"name {self.name!r} must be a non-empty folder name")


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


class Run:
    """A run directory and its config; `base_dir` resolves relative paths in the config."""

    def __init__(self, config: RunConfig, base_dir: Path | None = None) -> None:
        self.config = config
        self.base_dir = Path(base_dir or Path.cwd())
        out = Path(config.out_dir)
        self.dir = (out if out.is_absolute() else self.base_dir / out) / config.name
        self.state = self.dir / "_state"

    def stage_dir(self, stage: str) -> Path:
        return self.dir / {"synthesize": "synth"}.get(stage, stage)

    def markers(self, stage: str) -> Markers:
        return Markers(self.state, stage)

    def prepare(self, overwrite: bool = False) -> None:
        """Create the run directory and save the resolved config; refuse to mix two configs in one run."""
        saved = self.dir / "config.yaml"
        text = cfg.dump_yaml(self.config)
        changed = config_changes(cfg.load_yaml(saved), cfg.to_dict(self.config)) if saved.exists() else []
        if changed:
            if not overwrite:
                shown = ", ".join(changed[:8]) + (", ..." if len(changed) > 8 else "")
                raise cfg.ConfigError(
                    f"{self.dir} holds a run made with a different config ({saved}; changed: {shown}); "
                    "choose another name, or pass --overwrite to discard its outputs (the request cache is kept)"
                )
            self.clear_outputs()
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, text)

    def clear_outputs(self) -> None:
        for stage in STAGES:
            shutil.rmtree(self.stage_dir(stage), ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)

    def synthesis_input(self) -> Path:
        """Seeds as synthesis reads them: filtered when the run has a filter stage."""
        return self.stage_dir("filter" if "filter" in self.config.stages else "seeds")

    def seeds_for_shard(self, index: int) -> list:
        return [seed_from_dict(d) for d in read_jsonl(self.synthesis_input() / shard_name(index))]


def run_stage(run: Run, stage: str, progress: Progress | None = None, force: bool = False) -> dict[str, Any] | None:
    """Run one stage unless it is complete (force reruns it from scratch)."""
    markers = run.markers(stage)
    if force:
        markers.clear()
        shutil.rmtree(run.stage_dir(stage), ignore_errors=True)
    if markers.stage_done():
        log.info("%s: already complete, skipped", stage)
        return None
    from ctxsynth.stages import STAGE_FUNCTIONS

    return STAGE_FUNCTIONS[stage](run, progress)


def run_all(run: Run, progress_factory=None) -> dict[str, Any]:
    results = {}
    for stage in run.config.stages:
        progress = progress_factory() if progress_factory else None
        results[stage] = run_stage(run, stage, progress)
    return results


def validate_run(run: Run) -> list[str]:
    """Check names and options a run will use without calling a model; return warnings."""
    import inspect
    import os

    from ctxsynth.export import FORMATS
    from ctxsynth.llm import BACKENDS
    from ctxsynth.synth.tasks import build_task

    c = run.config
    for fmt in c.export.formats:
        FORMATS.get(fmt)
    warnings: list[str] = []
    backend_cls = BACKENDS.get(c.llm.backend)
    params = inspect.signature(backend_cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(c.llm.options) - set(params))
        if unknown:
            known = ", ".join(p for p in params if p not in ("self", "model"))
            raise cfg.ConfigError(f"llm.options: {unknown} not accepted by backend {c.llm.backend!r}; it takes: {known}")
    build_task(c.synth, c.seed)  # unknown task names, prompt files and genres fail here
    if c.llm.backend == "openai":
        env = c.llm.options.get("api_key_env", "OPENAI_API_KEY")
        base = str(c.llm.options.get("base_url") or "")
        if not os.environ.get(env) and "127.0.0.1" not in base and "localhost" not in base:
            warnings.append(f"environment variable {env} is not set: requests to {base or 'api.openai.com'} will fail")
    if c.synth.task in ("context", "multidoc") and c.llm.max_tokens < c.synth.target_words * 1.4:
        warnings.append(
            f"llm.max_tokens={c.llm.max_tokens} may truncate documents of {c.synth.target_words} words "
            f"(about {int(c.synth.target_words * 1.4)} tokens)"
        )
    return warnings
