"""Stage bodies: each reads the previous stage's shard folder and writes its own.

Shards are written atomically, then a completion marker per shard, then the stage's DONE marker, so
a rerun skips finished work; the request cache makes a half-finished synthesis shard cheap to redo.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ctxsynth import config as cfg
from ctxsynth.io import read_jsonl, read_shards, shard_files, shard_name, split_even, write_jsonl
from ctxsynth.llm.base import SamplingParams
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import Rejected, synthesized_from_dict, to_dict
from ctxsynth.runner import LLMConfig, Run

log = logging.getLogger(__name__)


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


def run_filter(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    """Drop seeds that do not need a context, are ill-posed, duplicated or contaminated (ctxsynth.filters).

    Filters see all seeds at once (dedup is global); the survivors are re-sharded like the seeds."""
    from ctxsynth.filters import apply_filters
    from ctxsynth.records import seed_from_dict

    progress = progress or NullProgress()
    seeds = [seed_from_dict(d) for d in read_shards(run.stage_dir("seeds"))]
    progress.start("filter", len(seeds))
    out = run.stage_dir("filter")
    kept, rejected, stats = apply_filters(seeds, run.config.filters, run.config.seed, cache_dir=run.dir)
    progress.advance(len(seeds))
    progress.finish()
    for i, (start, stop) in enumerate(split_even(len(kept), run.config.shards)):
        write_jsonl(out / shard_name(i), (to_dict(s) for s in kept[start:stop]))
    write_jsonl(out / "rejected" / shard_name(0), (to_dict(r) for r in rejected))
    summary = {"n_in": len(seeds), "n_out": len(kept), **{k: v for k, v in stats.items() if k not in ("in", "kept")}}
    run.markers("filter").mark_stage(summary)
    return summary


def build_backend(run: Run):
    from ctxsynth.llm import BACKENDS
    from ctxsynth.llm.cache import CachedBackend, RequestCache

    llm = run.config.llm
    backend_cls = BACKENDS.get(llm.backend)
    try:
        inner = backend_cls(model=llm.model, **llm.options)
    except TypeError as e:
        raise cfg.ConfigError(f"llm.options for backend {llm.backend!r}: {e}") from None
    backend = CachedBackend(inner, RequestCache(run.dir / "cache.sqlite"))
    if llm.max_cost_usd is not None:  # ctxsynth.budget: a spend limit, kept across resumes
        from ctxsynth.budget import LEDGER, BudgetedBackend, model_price

        price = model_price(run.config.report.prices, llm.model)
        chunk = int(llm.options.get("max_concurrency", 16))
        return BudgetedBackend(backend, llm.max_cost_usd, price, run.state / LEDGER, chunk=chunk)
    return backend


def sampling_params(llm: LLMConfig) -> SamplingParams:
    return SamplingParams(temperature=llm.temperature, top_p=llm.top_p, max_tokens=llm.max_tokens)


def run_synthesize(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    from ctxsynth.synth.stage import synthesize_shard, synthesized_to_dict
    from ctxsynth.synth.tasks import build_task

    progress = progress or NullProgress()
    markers = run.markers("synthesize")
    sc = run.config.synth
    task = build_task(sc, run.config.seed)
    todo = [i for i in range(len(shard_files(run.synthesis_input()))) if not markers.shard_done(i)]
    shards = {i: run.seeds_for_shard(i) for i in todo}
    progress.start("synthesize", sum(len(s) for s in shards.values()))
    backend = build_backend(run) if todo else None
    try:
        for i in todo:
            result = synthesize_shard(shards[i], task, backend, sampling_params(run.config.llm), sc,
                                      run.config.verify, run.config.seed, progress)
            out = run.stage_dir("synthesize")
            write_jsonl(out / shard_name(i), (synthesized_to_dict(r) for r in result.kept))
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


def run_assemble(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    """Gold context + distractors -> samples at the configured budget; the pool is every kept context."""
    from ctxsynth.assemble import Assembler

    progress = progress or NullProgress()
    markers = run.markers("assemble")
    shards = [[synthesized_from_dict(d) for d in read_jsonl(path)] for path in shard_files(run.stage_dir("synthesize"))]
    pool = [record for shard in shards for record in shard]  # distractors come from every shard
    todo = [i for i in range(len(shards)) if not markers.shard_done(i)]
    assembler = Assembler(run.config.assemble, pool, run.config.seed) if todo and pool else None
    by_shard = {i: shards[i] for i in todo}
    progress.start("assemble", sum(len(v) for v in by_shard.values()))
    out = run.stage_dir("assemble")
    for i in todo:
        samples, rejected = [], []
        for record in by_shard[i]:
            item = assembler.assemble(record)
            if isinstance(item, Rejected):
                rejected.append(item)
            else:
                samples.append(item)
            progress.advance()
        write_jsonl(out / shard_name(i), (to_dict(s) for s in samples))
        write_jsonl(out / "rejected" / shard_name(i), (to_dict(r) for r in rejected))
        stats: dict[str, Any] = {"n_in": len(by_shard[i]), "n_out": len(samples)}
        for r in rejected:
            stats[f"dropped_{r.reason}"] = stats.get(f"dropped_{r.reason}", 0) + 1
        markers.mark_shard(i, stats)
    progress.finish()
    summary = merge_stats(markers.shard_stats())
    if assembler is not None:
        summary["assembler"] = dict(assembler.stats)
    markers.mark_stage(summary)
    return summary


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
    samples = [Sample(**d) for d in read_shards(run.stage_dir("assemble"))]
    mix = None
    if ec.mix_path:
        path = Path(ec.mix_path)
        mix = MixConfig(path if path.is_absolute() else run.base_dir / path, ec.mix_ratio)
    manifests = export_samples(
        samples, run.stage_dir("export"), ec.formats, config_hash=cfg.config_hash(run.config),
        tokenizer_name=run.config.assemble.tokenizer, mix=mix, seed=run.config.seed, dataset_name=ec.dataset_name,
        card=card_info(run),
    )
    summary: dict[str, Any] = {"n_in": len(samples), "formats": {k: v.get("counts", {}) for k, v in manifests.items()}}
    if "report" not in run.config.stages:  # otherwise the report stage pushes, with the full card
        summary["pushed"] = push_if_configured(run, None)
    run.markers("export").mark_stage(summary)
    return summary


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


STAGE_FUNCTIONS = {
    "seeds": run_seeds, "filter": run_filter, "synthesize": run_synthesize, "assemble": run_assemble, "export": run_export,
    "report": run_report,
}
