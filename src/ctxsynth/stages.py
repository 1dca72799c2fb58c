"""The stage table and the stage bodies: each reads its input stage's shard folder and writes its own.

`STAGES` is the one list of stages (name, output folder, body, inputs) that the runner, the CLI,
the report and the summary read; adding a stage is one entry here plus its body. `run_sharded`
owns the loop every sharded stage shares: skip finished shards, write kept and rejected records
atomically, mark the shard with its counts, merge the counts into the stage's DONE marker. A rerun
skips finished work; the request cache makes a half-finished synthesis shard cheap to redo.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctxsynth import config as cfg
from ctxsynth.io import read_shards, shard_files, shard_name, split_even, write_jsonl
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import Rejected, to_dict

if TYPE_CHECKING:  # the runner imports this module, never the other way round
    from ctxsynth.runner import Run

log = logging.getLogger(__name__)
StageFunction = Callable[["Run", "Progress | None"], dict[str, Any]]


@dataclass(frozen=True)
class Stage:
    name: str  # the CLI verb and the key in `stages:`
    folder: str  # output folder under the run directory
    function: StageFunction
    inputs: tuple[str, ...] = ()  # stages it reads; the first one the run includes (else the last) is read
    help: str = ""
    reads: tuple[str, ...] = ()  # config keys (dotted prefixes) its output depends on: a change reruns it
    # listed in `stages:` only by choice (not in the default list) and no per-stage CLI verb of its
    # own: `ctxsynth train` / `ctxsynth eval` take their own configs (ctxsynth.model_stages)
    opt_in: bool = False


@dataclass
class ShardOutput:
    """What a stage made of one shard: kept records (as dicts), rejections (None: no rejected file), stats."""

    kept: list[dict[str, Any]]
    rejected: list[Rejected] | None
    stats: dict[str, Any] = field(default_factory=dict)


class ShardWork:
    """A stage's per-shard work that can run in another process (the contract: ctxsynth.executors).

    Subclasses are small picklable (frozen) dataclasses; `run_shard` is called in a worker with a
    `Run` rebuilt from the config, builds its resources through `executors.worker_resource`, and
    returns the shard's output; the worker writes and marks it."""

    def run_shard(self, run: Run, index: int, progress: Progress) -> ShardOutput:
        raise NotImplementedError

    def max_parallel(self, run: Run, workers: int) -> int:
        """How many shards may run at once (an API limit shared by the workers may lower it)."""
        return workers

    def for_parallel(self, parallel: int) -> ShardWork:
        """This work, told how many shards will run at once (to split a shared limit); default: itself."""
        return self


def write_shard(run: Run, stage: str, index: int, shard: ShardOutput) -> dict[str, Any]:
    """Write a shard's kept and rejected records atomically, then its marker; return its counts.

    Counts: n_out (kept), dropped_<reason> (rejected) and n_in (their sum), overridden or extended
    by the shard's own stats."""
    out = run.stage_dir(stage)
    write_jsonl(out / shard_name(index), shard.kept)
    rejected = shard.rejected or []
    if shard.rejected is not None:
        write_jsonl(out / "rejected" / shard_name(index), (to_dict(r) for r in rejected))
    stats: dict[str, Any] = {"n_in": len(shard.kept) + len(rejected), "n_out": len(shard.kept)}
    for r in rejected:
        stats[f"dropped_{r.reason}"] = stats.get(f"dropped_{r.reason}", 0) + 1
    stats.update(shard.stats)
    run.markers(stage).mark_shard(index, stats)
    return stats


def execute_shard(config: Any, base_dir: str, stage: str, work: ShardWork, index: int, session: str,
                  progress: Progress | None = None) -> dict[str, Any]:
    """One shard in whichever process the executor chose: rebuild the run, work, write, mark."""
    from ctxsynth.executors import enter_session
    from ctxsynth.runner import Run

    enter_session(session)
    run = Run(config, Path(base_dir))
    shard = work.run_shard(run, index, progress or NullProgress())
    return write_shard(run, stage, index, shard)


def run_sharded(run: Run, stage: str, n_shards: int, work: ShardWork | Callable[[int], ShardOutput],
                progress: Progress | None = None) -> dict[str, Any]:
    """Run every unfinished shard; each is written and marked as it finishes; mark and return the stage.

    A `ShardWork` goes to the run's executor (workers); a plain `work(i)` runs here, one shard after another."""
    markers = run.markers(stage)
    todo = [i for i in range(n_shards) if not markers.shard_done(i)]
    if isinstance(work, ShardWork) or callable(getattr(work, "run_shard", None)):  # a ShardWork, or shaped like one
        from ctxsynth.shard_loop import run_shards

        run_shards(run, stage, todo, work, progress or NullProgress())  # type: ignore[arg-type]
    else:
        for i in todo:
            write_shard(run, stage, i, work(i))
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


def _split(run: Run, kept: list[dict[str, Any]], rejected: list[Rejected],
           extra: dict[str, Any]) -> Callable[[int], ShardOutput]:
    """Work for a stage that sees all records at once: even shards; rejections and extra stats on shard 0."""
    ranges = split_even(len(kept), run.config.shards)

    def work(i: int) -> ShardOutput:
        start, stop = ranges[i]
        return ShardOutput(kept[start:stop], rejected if i == 0 else None, extra if i == 0 else {})

    return work


def run_seeds(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    """Read the seed source once, streaming it to a spill file (driver pass), then cut the spill into
    even shards in the workers: memory does not grow with the number of seeds."""
    from ctxsynth.seeds.spill import spill_seeds

    progress = progress or NullProgress()
    progress.start("seeds", run.config.seeds.limit or 0)
    try:
        work, n_kept, n_rejected = spill_seeds(run, progress)
        summary = run_sharded(run, "seeds", run.config.shards, work)
    finally:
        progress.finish()
    work.remove()
    run.record_seed_inputs()
    log.info("seeds: %d kept, %d rejected", n_kept, n_rejected)
    return summary


def run_filter(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    """Drop seeds that do not need a context, are ill-posed, duplicated or contaminated (ctxsynth.filters).

    Streaming (ctxsynth.filters.stage): dedup's global pass in order over the input shards (its
    index on disk), the per-record filters shard by shard, then the survivors re-sharded evenly."""
    from ctxsynth.filters.stage import (
        FilterShard,
        clear_work,
        global_pass,
        merge_tallies,
        output_work,
        release_filters,
    )

    progress = progress or NullProgress()
    files = shard_files(run.input_dir("filter"))
    work = run.markers("filter").dir / "work"
    clear_work(work)
    counts = [int(s.get("n_out", 0)) for s in run.markers(run.input_stage("filter")).shard_stats()]
    progress.start("filter", sum(counts))
    try:
        tally, names = global_pass(run, files, work, progress)
        shard = FilterShard(str(work))
        results = [shard.run_shard(run, i, progress) for i in range(len(files))]
    finally:
        release_filters()
        progress.finish()
    extra = merge_tallies(tally, results, [v for r in results for v in r["reliance"]])
    summary = run_sharded(run, "filter", run.config.shards, output_work(run, work, [r["kept"] for r in results],
                                                                        names, extra))
    shutil.rmtree(work, ignore_errors=True)
    return summary


def synthesis_backend(run: Run, max_concurrency: int | None = None) -> Any:
    """llm: behind the breaker and the request cache; with `llm.max_cost_usd`, behind a spend limit
    kept across resumes (ctxsynth.budget). `max_concurrency` replaces the option of that name (a
    worker's share of the limit)."""
    llm = run.config.llm
    if max_concurrency is not None:
        llm = dataclasses.replace(llm, options={**llm.options, "max_concurrency": max_concurrency})
    backend = llm.build(run.dir / "cache.sqlite", run.config.max_consecutive_failures)
    if llm.max_cost_usd is None:
        return backend
    from ctxsynth.budget import LEDGER, BudgetedBackend, model_price

    price = model_price(run.config.report.prices, llm.model)
    chunk = int(llm.options.get("max_concurrency", 16))
    return BudgetedBackend(backend, llm.max_cost_usd, price, run.state / LEDGER, chunk=chunk)


def run_synthesize(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    from ctxsynth.synth.work import SynthesizeShard

    progress = progress or NullProgress()
    source = run.input_dir("synthesize")
    n_shards = len(shard_files(source))
    markers = run.markers("synthesize")
    counts = [int(s.get("n_out", 0)) for s in run.markers(run.input_stage("synthesize")).shard_stats()]
    progress.start("synthesize", sum(n for i, n in enumerate(counts) if not markers.shard_done(i)))
    try:
        return run_sharded(run, "synthesize", n_shards, SynthesizeShard(str(source)), progress)
    finally:
        progress.finish()


def run_assemble(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    """Gold context + distractors -> samples at the configured budget; the pool is every kept context.

    The pool is built once on disk (streaming, ctxsynth.assemble.pool), then each shard is assembled
    against it: memory holds one shard and the pool documents it reads, never the whole pool."""
    from ctxsynth.assemble.shards import POOL_FILE, AssembleShard, ensure_pool, release_assembler

    progress = progress or NullProgress()
    markers = run.markers("assemble")
    files = shard_files(run.input_dir("assemble"))
    todo = [i for i in range(len(files)) if not markers.shard_done(i)]
    pool_path = markers.dir / POOL_FILE
    if todo:
        ensure_pool(files, run.config.assemble, pool_path, run.executor() if len(files) > 1 else None)
    counts = [int(s.get("n_out", 0)) for s in run.markers(run.input_stage("assemble")).shard_stats()]
    progress.start("assemble", sum(n for i, n in enumerate(counts) if i in todo))
    work = AssembleShard(run.config.assemble, run.config.seed, tuple(map(str, files)), str(pool_path))
    try:
        return run_sharded(run, "assemble", len(files), work, progress)  # in the executor's workers
    finally:
        release_assembler()
        progress.finish()


def card_info(run: Run) -> Any:
    """What the cards state beyond the rows: licence and seeds (from the seed source), generator, tokenizer."""
    from ctxsynth.export.hub import CardInfo, seed_source_info

    c = run.config
    licence, seeds_line = seed_source_info(c.seeds.source, c.seeds.path)
    return CardInfo(license=c.export.license or licence, language=list(c.export.language), seed_sources=[seeds_line],
                    generators=[f"{c.llm.backend}: {c.llm.model}"], tokenizer=c.assemble.tokenizer,
                    pretty_name=c.export.dataset_name)


def push_if_configured(run: Run, card: str | None, attachments: list[Path] | None = None) -> list[str]:
    """Upload the export folder (and the card) when export.push_to_hub names a repository."""
    from ctxsynth.export.hub import push_export

    ec = run.config.export
    if not ec.push_to_hub:
        return []
    return push_export(run.stage_dir("export"), ec.push_to_hub, private=ec.private, card=card,
                       attachments=attachments or [])


def run_export(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    from ctxsynth.export import MixConfig, export_samples
    from ctxsynth.records import Sample

    ec = run.config.export
    n_in = 0

    def samples() -> Iterator[Sample]:  # streamed: export memory does not grow with the samples
        nonlocal n_in
        for d in read_shards(run.input_dir("export")):
            n_in += 1
            yield Sample(**d)

    mix = None
    if ec.mix_path:
        path = Path(ec.mix_path)
        mix = MixConfig(path if path.is_absolute() else run.base_dir / path, ec.mix_ratio)
    manifests = export_samples(
        samples(), run.stage_dir("export"), ec.formats, config_hash=run.config_hash(),
        tokenizer_name=run.config.assemble.tokenizer, mix=mix, seed=run.config.seed, dataset_name=ec.dataset_name,
        card=card_info(run),
    )
    summary: dict[str, Any] = {"n_in": n_in, "formats": {k: v.get("counts", {}) for k, v in manifests.items()}}
    if "report" not in run.config.stages:  # otherwise the report stage pushes, with the full card
        summary["pushed"] = push_if_configured(run, None)
    run.markers("export").mark_stage(summary)
    return summary


def run_train(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    from ctxsynth.model_stages import run_train as train_stage  # torch and trl load only here

    return train_stage(run, progress)


def run_eval(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    from ctxsynth.model_stages import run_evaluation

    return run_evaluation(run, progress)


def run_report(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    from ctxsynth.report import write_report

    path = write_report(run.dir, price_table=run.config.report.prices or None)
    summary: dict[str, Any] = {"card": str(path)}
    hub_card = run.stage_dir("export") / "README.md"
    if run.config.export.push_to_hub and hub_card.exists():
        card = hub_card.read_text(encoding="utf-8").replace("](../report/", "](report/")
        summary["pushed"] = push_if_configured(run, card, sorted(path.parent.glob("*.png")))
    run.markers("report").mark_stage(summary)
    return summary


STAGES: tuple[Stage, ...] = (
    Stage("seeds", "seeds", run_seeds, (), "Read seeds (JSONL, Parquet, datasets, built-ins) into shards.",
          ("seeds", "shards")),
    Stage("filter", "filter", run_filter, ("seeds",), "Drop ill-posed, duplicated, contaminated or closed-book seeds.",
          ("filters", "seed")),
    Stage("synthesize", "synth", run_synthesize, ("filter", "seeds"), "Write and verify a context for every seed.",
          ("llm", "synth", "verify", "seed")),
    Stage("assemble", "assemble", run_assemble, ("synthesize",), "Gold context + distractors at the token budget.",
          ("assemble",)),
    Stage("export", "export", run_export, ("assemble",), "Write the samples in the trainers' formats.",
          ("export",)),
    Stage("train", "train", run_train, ("export",),
          "Fine-tune train.model on this run's export (resumes from its last checkpoint).", ("train",), opt_in=True),
    Stage("eval", "eval", run_eval, ("train",),
          "Evaluate the trained model and the base model on the eval sets; compare them.", ("eval",), opt_in=True),
    Stage("report", "report", run_report, ("seeds", "filter", "synthesize", "assemble", "export"),
          "Write the dataset card and its plots.", ("report",)),
)
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
DEFAULT_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if not s.opt_in)
_BY_NAME = {s.name: s for s in STAGES}


def stage(name: str) -> Stage:
    if name not in _BY_NAME:
        raise cfg.ConfigError(f"unknown stage {name!r}; known, in order: {', '.join(STAGE_NAMES)}")
    return _BY_NAME[name]


def stage_folder(name: str) -> str:
    """The output folder of a stage under the run directory (e.g. synthesize -> synth)."""
    return stage(name).folder
