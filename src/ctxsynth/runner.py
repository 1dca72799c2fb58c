"""One run = one directory: the run config, and the stages that read and write shard folders.

    seeds -> synthesize -> assemble -> export -> report

Each stage writes shard files atomically and a completion marker per shard, then a DONE marker;
`run_all` skips finished stages and finished shards, and the request cache (cache.sqlite) makes a
half-finished shard cheap to redo. Stage bodies live with their packages; this module wires them.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxsynth import config as cfg
from ctxsynth.io import (
    Markers,
    atomic_write_text,
    read_jsonl,
    shard_files,
    shard_name,
    split_even,
    write_jsonl,
)
from ctxsynth.llm.base import SamplingParams
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import seed_from_dict, to_dict
from ctxsynth.seeds import SeedsConfig
from ctxsynth.synth.stage import SynthConfig
from ctxsynth.verify.checks import VerifyConfig

log = logging.getLogger(__name__)

STAGES = ("seeds", "synthesize", "assemble", "export", "report")


@dataclass
class LLMConfig:
    backend: str = "transformers"  # openai | transformers | fake
    model: str = "smollm2-135m-instruct"
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 4096
    options: dict[str, Any] = field(default_factory=dict)  # backend keyword arguments (base_url, batch_size, ...)


@dataclass
class RunConfig:
    name: str
    out_dir: str = "runs"
    seed: int = 0
    shards: int = 1
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"stages: unknown stage(s) {unknown}; known, in order: {', '.join(STAGES)}")
        if self.shards < 1:
            raise ValueError("shards must be >= 1")
        if not self.name or "/" in self.name:
            raise ValueError(f"name {self.name!r} must be a non-empty folder name")


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
        if saved.exists() and saved.read_text(encoding="utf-8") != text:
            if not overwrite:
                raise cfg.ConfigError(
                    f"{self.dir} holds a run made with a different config ({saved}); "
                    "choose another name, or pass --overwrite to discard its outputs (the request cache is kept)"
                )
            self.clear_outputs()
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, text)

    def clear_outputs(self) -> None:
        for stage in STAGES:
            shutil.rmtree(self.stage_dir(stage), ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)

    def seeds_for_shard(self, index: int) -> list:
        path = self.stage_dir("seeds") / shard_name(index)
        return [seed_from_dict(d) for d in read_jsonl(path)]


def run_seeds(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    from ctxsynth.records import Rejected
    from ctxsynth.seeds import read_seeds

    progress = progress or NullProgress()
    markers = run.markers("seeds")
    seeds, rejected = [], []
    progress.start("seeds", run.config.seeds.limit or 0)
    for item in read_seeds(run.config.seeds, base_dir=run.base_dir):
        (rejected if isinstance(item, Rejected) else seeds).append(item)
        progress.advance()
    progress.finish()
    out = run.stage_dir("seeds")
    for i, (start, stop) in enumerate(split_even(len(seeds), run.config.shards)):
        write_jsonl(out / shard_name(i), (to_dict(s) for s in seeds[start:stop]))
    write_jsonl(out / "rejected" / shard_name(0), (to_dict(r) for r in rejected))
    stats: dict[str, Any] = {"n_in": len(seeds) + len(rejected), "n_out": len(seeds)}
    for r in rejected:
        stats[f"dropped_{r.reason}"] = stats.get(f"dropped_{r.reason}", 0) + 1
    markers.mark_stage(stats)
    log.info("seeds: %d kept, %d rejected", len(seeds), len(rejected))
    return stats


def build_backend(run: Run):
    from ctxsynth.llm import BACKENDS
    from ctxsynth.llm.cache import CachedBackend, RequestCache

    llm = run.config.llm
    backend_cls = BACKENDS.get(llm.backend)
    try:
        inner = backend_cls(model=llm.model, **llm.options)
    except TypeError as e:
        raise cfg.ConfigError(f"llm.options for backend {llm.backend!r}: {e}") from None
    return CachedBackend(inner, RequestCache(run.dir / "cache.sqlite"))


def sampling_params(llm: LLMConfig) -> SamplingParams:
    return SamplingParams(temperature=llm.temperature, top_p=llm.top_p, max_tokens=llm.max_tokens)


def run_synthesize(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    from ctxsynth.synth.stage import synthesize_shard
    from ctxsynth.synth.tasks import SYNTHESIS_TASKS

    progress = progress or NullProgress()
    markers = run.markers("synthesize")
    sc = run.config.synth
    task = SYNTHESIS_TASKS.get(sc.task)(target_words=sc.target_words, genre=sc.genre, prompt_file=sc.prompt_file)
    todo = [i for i in range(len(shard_files(run.stage_dir("seeds")))) if not markers.shard_done(i)]
    shards = {i: run.seeds_for_shard(i) for i in todo}
    progress.start("synthesize", sum(len(s) for s in shards.values()))
    backend = build_backend(run) if todo else None
    try:
        for i in todo:
            result = synthesize_shard(shards[i], task, backend, sampling_params(run.config.llm), sc,
                                      run.config.verify, run.config.seed, progress)
            out = run.stage_dir("synthesize")
            write_jsonl(out / shard_name(i), (to_dict(r) for r in result.kept))
            write_jsonl(out / "rejected" / shard_name(i), (to_dict(r) for r in result.rejected))
            markers.mark_shard(i, result.stats)
    finally:
        progress.finish()
        if backend is not None:
            backend.close()
    summary = merge_stats(markers.shard_stats())
    markers.mark_stage(summary)
    return summary


def merge_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for s in stats:
        for key, value in s.items():
            if isinstance(value, dict):
                sub = total.setdefault(key, {})
                for k, v in value.items():
                    sub[k] = sub.get(k, 0) + v
            elif isinstance(value, (int, float)):
                total[key] = total.get(key, 0) + value
    return total


STAGE_FUNCTIONS = {"seeds": run_seeds, "synthesize": run_synthesize}


def run_stage(run: Run, stage: str, progress: Progress | None = None, force: bool = False) -> dict[str, Any] | None:
    """Run one stage unless it is complete (force reruns it from scratch)."""
    markers = run.markers(stage)
    if force:
        markers.clear()
        shutil.rmtree(run.stage_dir(stage), ignore_errors=True)
    if markers.stage_done():
        log.info("%s: already complete, skipped", stage)
        return None
    if stage not in STAGE_FUNCTIONS:
        raise NotImplementedError(f"stage {stage!r} is not available in this version")
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

    from ctxsynth.llm import BACKENDS
    from ctxsynth.synth.tasks import SYNTHESIS_TASKS

    c = run.config
    warnings: list[str] = []
    backend_cls = BACKENDS.get(c.llm.backend)
    params = inspect.signature(backend_cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(c.llm.options) - set(params))
        if unknown:
            known = ", ".join(p for p in params if p not in ("self", "model"))
            raise cfg.ConfigError(f"llm.options: {unknown} not accepted by backend {c.llm.backend!r}; it takes: {known}")
    SYNTHESIS_TASKS.get(c.synth.task)(target_words=c.synth.target_words, genre=c.synth.genre,
                                       prompt_file=c.synth.prompt_file)
    for stage in c.stages:
        if stage not in STAGE_FUNCTIONS:
            warnings.append(f"stage {stage!r} is not available in this version and will stop the run")
    if c.llm.backend == "openai":
        env = c.llm.options.get("api_key_env", "OPENAI_API_KEY")
        base = str(c.llm.options.get("base_url") or "")
        if not os.environ.get(env) and "127.0.0.1" not in base and "localhost" not in base:
            warnings.append(f"environment variable {env} is not set: requests to {base or 'api.openai.com'} will fail")
    if c.llm.max_tokens < c.synth.target_words * 1.4:
        warnings.append(
            f"llm.max_tokens={c.llm.max_tokens} may truncate documents of {c.synth.target_words} words "
            f"(about {int(c.synth.target_words * 1.4)} tokens)"
        )
    return warnings
