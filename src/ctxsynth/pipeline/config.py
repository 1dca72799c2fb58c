"""The run config schema: one dataclass per section, each owned by its component, composed here.

`RunConfig` is what a run YAML loads into (ctxsynth.config: unknown keys and wrong types are errors);
the run directory that holds its outputs is ctxsynth.pipeline.run. The sections come from the
packages that read them; this module imports their config modules only, never a stage body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ctxsynth.assemble.config import AssembleConfig
from ctxsynth.errors import ConfigError
from ctxsynth.eval.config import RunEvalConfig
from ctxsynth.filters.config import FiltersConfig
from ctxsynth.llm.base import SamplingParams
from ctxsynth.llm.prices import Price
from ctxsynth.llm.spec import ModelSpec
from ctxsynth.pipeline.executors import ExecutorKind, RayConfig
from ctxsynth.pipeline.stages import DEFAULT_STAGES, STAGE_NAMES
from ctxsynth.seeds.config import SeedsConfig
from ctxsynth.synth.config import SynthConfig
from ctxsynth.train.config import RunTrainConfig
from ctxsynth.verify.checks import VerifyConfig


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
    # USD per million tokens by model, e.g. {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}};
    # the one price table of the spend limit (llm.max_cost_usd), `ctxsynth estimate` and the card
    prices: dict[str, Price] = field(default_factory=dict)


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
    # where shards run (ctxsynth.pipeline.executors): serial (this process), local (worker processes), ray;
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
    train: RunTrainConfig = field(default_factory=RunTrainConfig)  # the train stage (ctxsynth.train.stage)
    eval: RunEvalConfig = field(default_factory=RunEvalConfig)  # the eval stage (ctxsynth.eval.stage)

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGE_NAMES]
        if unknown:
            raise ConfigError(f"stages: unknown stage(s) {unknown}; known, in order: {', '.join(STAGE_NAMES)}")
        if [s for s in STAGE_NAMES if s in self.stages] != list(self.stages):
            raise ConfigError(f"stages: {self.stages} are out of order or repeated; they run in this order: "
                              f"{', '.join(STAGE_NAMES)}")
        if self.max_consecutive_failures < 1:
            raise ConfigError("max_consecutive_failures must be >= 1")
        if self.shards < 1:
            raise ConfigError("shards must be >= 1")
        if self.workers < 0 or self.shard_retries < 0:
            raise ConfigError("workers and shard_retries must be >= 0 (workers 0: one per core)")
        if not self.name or "/" in self.name:
            raise ConfigError(f"name {self.name!r} must be a non-empty folder name")
