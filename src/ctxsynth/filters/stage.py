"""The filter stage, shard by shard, with memory that does not grow with the number of seeds.

1. Global pass (driver, streaming): the filters up to the last global one (dedup: the first record
   of a group wins, so it must see every record in order) run on input shard after input shard;
   dedup's index is an SQLite file (ctxsynth.filters.dedup). Survivors and rejections go to
   spill files under _state/filter/work/.
2. Per-shard pass (`FilterShard`, picklable: settings and paths): the remaining filters, which judge
   each record alone (decontamination, closed-book probe, judge, reliance), on each spill.
3. Output (driver, streaming): the survivors are cut into `shards` even output shards and every
   rejection goes to rejected/shard-00000 grouped by filter in run order, exactly the layout (and
   bytes) of running every filter on the whole list at once.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxsynth.filters.pipeline import Tally, close_filters, reliance_stats, run_checks
from ctxsynth.filters.registry import Filter, FilterContext, build_filters
from ctxsynth.io import atomic_writer, dumps, read_jsonl, shard_files, shard_name, split_even
from ctxsynth.llm.base import Backend
from ctxsynth.llm.spec import ModelSpec
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.contract import ShardOutput, run_sharded
from ctxsynth.pipeline.run import Run
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import Rejected, seed_from_dict, to_dict

_FILTERS: dict[tuple[Any, ...], tuple[list[Filter], list[Backend]]] = {}  # this process's filters


def process_filters(run: Run, work_dir: Path) -> list[Filter]:
    """The enabled filters, built once per process (backends, models) and reused across shards."""
    key = (str(run.dir), repr(run.config.filters), run.config.seed)
    if key not in _FILTERS:
        release_filters()
        built: list[Backend] = []
        context = FilterContext(run.config.seed, None, run.dir, built, run.config.max_consecutive_failures,
                                work_dir=work_dir)
        _FILTERS[key] = (build_filters(run.config.filters, context), built)
    return _FILTERS[key][0]


def release_filters() -> None:
    for filters, built in _FILTERS.values():
        close_filters(filters, built)
    _FILTERS.clear()


def split_point(filters: list[Filter]) -> int:
    """Filters before this index run in the global pass (up to the last global one), the rest per shard."""
    return max((i + 1 for i, f in enumerate(filters) if f.global_pass), default=0)


def write_lines(path: Path, lines: Iterable[str]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
            n += 1
    return n


def _spill(work: Path, tag: str, i: int, kept: list[Any], rejected: dict[str, list[Rejected]]) -> None:
    write_lines(work / f"{tag}-kept-{i:05d}.jsonl", (dumps(to_dict(s)) for s in kept))
    for name, records in rejected.items():
        write_lines(work / f"rejected-{name}-{i:05d}.jsonl", (dumps(to_dict(r)) for r in records))


def global_pass(run: Run, files: list[Path], work: Path, progress: Progress) -> tuple[Tally, list[str]]:
    """Step 1: the global filters over every input shard in order; spills `global-kept-<i>`.
    Returns their tally and the names of all filters, in run order."""
    filters = process_filters(run, work)
    head = filters[: split_point(filters)]
    tally = Tally([f.name for f in head])
    for i, path in enumerate(files):
        seeds = [seed_from_dict(d) for d in read_jsonl(path)]
        kept, rejected = run_checks([(f.name, f.check) for f in head], seeds, tally)
        _spill(work, "global", i, kept, rejected)
        if len(head) == len(filters):
            progress.advance(len(seeds))
    return tally, [f.name for f in filters]


@dataclass(frozen=True)
class FilterShard:
    """Step 2 for input shard `index`: the per-record filters on its global-pass survivors."""

    work: str

    def run_shard(self, run: Run, index: int, progress: Progress) -> dict[str, Any]:
        work = Path(self.work)
        filters = process_filters(run, work)
        tail = filters[split_point(filters):]
        tally = Tally([f.name for f in tail])
        seeds = [seed_from_dict(d) for d in read_jsonl(work / f"global-kept-{index:05d}.jsonl")]
        kept, rejected = run_checks([(f.name, f.check) for f in tail], seeds, tally)
        _spill(work, "final", index, kept, rejected)
        if tail:
            progress.advance(len(seeds))
        reliance = [s.meta["filters"]["reliance"]["reliance"] for s in kept
                    if "reliance" in s.meta.get("filters", {}).get("reliance", {})]
        return {"kept": len(kept), "tally": {**tally.stats(), "reasons": dict(tally.reasons)}, "reliance": reliance}


def _kept_range(work: Path, counts: list[int], start: int, stop: int) -> list[dict[str, Any]]:
    """Survivors [start, stop) of the concatenation of the final spills, in order."""
    out: list[dict[str, Any]] = []
    offset = 0
    for i, n in enumerate(counts):
        if offset + n > start and offset < stop:
            with open(work / f"final-kept-{i:05d}.jsonl", encoding="utf-8") as f:
                for j, line in enumerate(f, offset):
                    if start <= j < stop:
                        out.append(json.loads(line))
        offset += n
    return out


def write_rejected(path: Path, work: Path, names: list[str], n_inputs: int) -> None:
    """rejected/shard-00000: every rejection, grouped by filter in run order (gzip, atomic)."""
    with atomic_writer(path) as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        for line in _rejected_lines(work, names, n_inputs):
            gz.write(line)


def _rejected_lines(work: Path, names: list[str], n_inputs: int) -> Iterator[bytes]:
    for name in names:
        for i in range(n_inputs):
            spill = work / f"rejected-{name}-{i:05d}.jsonl"
            if spill.exists():
                with open(spill, "rb") as f:
                    yield from f


def output_work(run: Run, work: Path, counts: list[int], names: list[str], extra: dict[str, Any]) -> Any:
    """work(i) for run_sharded: output shard i of the even split; rejections and extra stats on shard 0."""
    ranges = split_even(sum(counts), run.config.shards)

    def write(i: int) -> ShardOutput:
        kept = _kept_range(work, counts, *ranges[i])
        if i:
            return ShardOutput(kept, None, {})
        out = run.stage_dir("filter") / "rejected" / shard_name(0)
        write_rejected(out, work, names, len(counts))
        reasons = extra.pop("reasons")
        stats = {"n_in": len(kept) + sum(reasons.values()), **{f"dropped_{r}": n for r, n in reasons.items()}}
        return ShardOutput(kept, None, {**stats, **extra})

    return write


def clear_work(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)


def merge_tallies(first: Tally, shard_stats: list[dict[str, Any]], reliance: list[float]) -> dict[str, Any]:
    """The stage's extra stats on shard 0: seconds and drops per filter, reasons, reliance summary."""
    extra = first.stats()
    reasons = dict(first.reasons)
    for s in shard_stats:
        for key, value in s["tally"].items():
            if key == "reasons":
                for r, n in value.items():
                    reasons[r] = reasons.get(r, 0) + n
            else:
                extra[key] = round(extra.get(key, 0) + value, 3) if key.startswith("seconds_") else \
                    extra.get(key, 0) + value
    extra.update(reliance_stats(reliance))
    extra["reasons"] = reasons
    return extra


def model_specs(config: RunConfig) -> dict[str, ModelSpec]:
    """The chat models the enabled filters ask, by config key (the stage table's `models`): every
    enabled section with an `llm` model spec, in run order (a new model filter needs no line here)."""
    specs: dict[str, ModelSpec] = {}
    for f in dataclasses.fields(config.filters):
        section = getattr(config.filters, f.name)
        if getattr(section, "enabled", False) and isinstance(getattr(section, "llm", None), ModelSpec):
            specs[f"filters.{f.name}.llm"] = section.llm
    return specs


def run_filter(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    """Drop seeds that do not need a context, are ill-posed, duplicated or contaminated (ctxsynth.filters):
    the global pass in order over the input shards, the per-record filters shard by shard, then the
    survivors re-sharded evenly (see the module docstring)."""
    progress = progress or NullProgress()
    files = shard_files(run.input_dir("filter"))
    work = run.markers("filter").dir / "work"
    clear_work(work)
    progress.start("filter", sum(run.input_counts("filter")))
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
