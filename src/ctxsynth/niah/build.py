"""Build NIAH training samples and test grids from a `NiahConfig` (the pilot study's data).

Outputs under `out_dir`:
  train/shard-00000.jsonl.gz   ctxsynth.records.Sample rows (template "niah_<variant>")
  test/<variant>.jsonl         ctxsynth.records.EvalItem rows (metric "all_substring")
  export/<format>/             trainer formats, only when `export_formats` is set
  summary.json                 counts, token statistics and timings, written last
Each record draws from its own generator seeded by (seed, split, record id), so the output does
not depend on order, and training and test needles come from disjoint spaces (see needles.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ctxsynth.config import config_hash
from ctxsynth.errors import MissingDependency
from ctxsynth.io import atomic_write_text, dumps, shard_name, write_jsonl
from ctxsynth.niah.config import NiahConfig
from ctxsynth.niah.fit import Fitted, Fitter
from ctxsynth.niah.haystack import load_source
from ctxsynth.niah.needles import NeedlePlan, make_plan
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import EvalItem, Sample, to_dict
from ctxsynth.rng import rng_for
from ctxsynth.tokenize import load_tokenizer

log = logging.getLogger(__name__)


def make_fitter(config: NiahConfig) -> Fitter:
    tok = load_tokenizer(config.tokenizer)
    if config.composition == "needle_only":
        return Fitter(tok, None)
    # the slack lets every sample start at a random offset of the source
    return Fitter(tok, load_source(config.tokenizer, config.composition, 2 * config.max_length()))


def _example(config: NiahConfig, fitter: Fitter, split: str, record_id: str, variant: str,
             length: int, depth: float | None) -> tuple[NeedlePlan, Fitted]:
    rng = rng_for(config.seed, f"niah-{split}", record_id)
    gold_depth = rng.random() if depth is None else depth
    source_text = fitter.source.text if fitter.source is not None else ""
    plan = make_plan(config, variant, rng, split, gold_depth, source_text)
    return plan, fitter.fit(plan, length, rng)


def _needle_meta(plan: NeedlePlan, fitted: Fitted) -> dict[str, Any]:
    return {
        "needle_keys": [n.key for n in plan.needles],
        "needle_values": [n.value for n in plan.needles],
        "needle_targets": [n.target for n in plan.needles],
        "needle_depths": [round(n.depth, 6) for n in plan.needles],
        "needle_haystack_depths": [round(d, 6) for d in fitted.haystack_depths],
        "haystack_chars": fitted.haystack_chars,
        "needle_char_spans": fitted.char_spans,
        "needle_token_spans": fitted.token_spans,
    }


def _sample(config: NiahConfig, record_id: str, variant: str, plan: NeedlePlan, fitted: Fitted) -> Sample:
    gold = next(i for i, n in enumerate(plan.needles) if n.target)
    in_order = sorted(range(len(plan.needles)), key=lambda i: fitted.char_spans[i][0])
    slot = {i: s for s, i in enumerate(in_order)}
    token_span = fitted.token_spans[gold]
    meta = {
        "variant": variant, "composition": config.composition, "split": "train",
        "key_format": config.key_format, "value_format": config.value_format,
        "instruction": plan.question, "answers": plan.answers, **_needle_meta(plan, fitted),
    }
    return Sample(
        id=record_id, task=f"niah_{variant}", seed_id=record_id,
        messages=[{"role": "user", "content": fitted.user}, {"role": "assistant", "content": fitted.answer}],
        answer=plan.answers[0] if len(plan.answers) == 1 else list(plan.answers),
        template=f"niah_{variant}", gold_index=slot[gold],
        gold_indices=sorted(slot[i] for i, n in enumerate(plan.needles) if n.target),
        gold_depth=round(token_span[0] / max(1, fitted.tokens["prompt"]), 6),
        gold_char_span=fitted.char_spans[gold], gold_token_span=token_span,
        n_documents=len(plan.needles),
        distractor_ids=[f"needle:{n.key}:{n.value}" for n in plan.needles if not n.target],
        distractor_strategy=config.composition, separator="\n" if config.composition == "needle_only" else " ",
        tokens=fitted.tokens, tokenizer=config.tokenizer, meta=meta,
    )


def build_train_samples(config: NiahConfig, fitter: Fitter, progress: Progress | None = None) -> list[Sample]:
    """`samples_per_variant` samples for each variant, lengths and depths cycled (see TrainSpec)."""
    spec = config.train
    if spec is None:
        return []
    samples = []
    for variant in config.variants:
        for i in range(spec.samples_per_variant):
            length = spec.lengths[i % len(spec.lengths)]
            depth = spec.depths[(i // len(spec.lengths)) % len(spec.depths)] if spec.depths else None
            record_id = f"niah-train-{variant}-{i:05d}"
            plan, fitted = _example(config, fitter, "train", record_id, variant, length, depth)
            samples.append(_sample(config, record_id, variant, plan, fitted))
            if progress is not None:
                progress.advance()
        log.info("built %d %s training samples", spec.samples_per_variant, variant)
    return samples


def build_test_items(config: NiahConfig, fitter: Fitter, variant: str,
                     progress: Progress | None = None) -> list[EvalItem]:
    """The length x depth x samples_per_cell grid of one variant (one length for needle_only)."""
    spec = config.test
    if spec is None:
        return []
    lengths = [0] if config.composition == "needle_only" else spec.lengths
    items = []
    for length in lengths:
        for depth in spec.depths:
            for j in range(spec.samples_per_cell):
                record_id = f"niah-test-{variant}-{length}-{round(depth * 100):03d}-{j:04d}"
                target = length - spec.max_new_tokens if spec.reserve_generation and length else length
                plan, fitted = _example(config, fitter, "test", record_id, variant, target, depth)
                meta = {
                    "variant": variant, "length": length, "depth": depth, "needle_format": config.value_format,
                    "key_format": config.key_format, "composition": config.composition,
                    "tokens": fitted.tokens, **_needle_meta(plan, fitted),
                }
                items.append(EvalItem(id=record_id, task=f"niah_{variant}", prompt=fitted.user,
                                      answers=list(plan.answers), metric="all_substring",
                                      max_new_tokens=spec.max_new_tokens, meta=meta))
                if progress is not None:
                    progress.advance()
    return items


def _token_stats(totals: list[int]) -> dict[str, Any]:
    if not totals:
        return {"count": 0}
    return {"count": len(totals), "min": min(totals), "max": max(totals), "mean": round(sum(totals) / len(totals), 1)}


def _export(config: NiahConfig, samples: list[Sample], out_dir: Path) -> dict[str, Any]:
    try:
        from ctxsynth.export import export_samples
    except ImportError as e:
        raise MissingDependency(
            f"export_formats={config.export_formats} needs ctxsynth.export.export_samples, which cannot be "
            f"imported ({e}); leave export_formats empty and export train/ later"
        ) from e
    return export_samples(samples, out_dir / "export", config.export_formats,
                          config_hash=config_hash(config), tokenizer_name=config.tokenizer)


def _total(config: NiahConfig) -> int:
    n = config.train.samples_per_variant * len(config.variants) if config.train is not None else 0
    if config.test is not None:
        lengths = 1 if config.composition == "needle_only" else len(config.test.lengths)
        n += lengths * len(config.test.depths) * config.test.samples_per_cell * len(config.variants)
    return n


def build_niah(config: NiahConfig, out_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Write the training samples and/or test sets of `config` under `out_dir`; return the summary."""
    out_dir = Path(out_dir)
    progress = progress or NullProgress()
    progress.start("niah", _total(config))
    began = time.perf_counter()
    fitter = make_fitter(config)
    summary: dict[str, Any] = {"config_hash": config_hash(config), "tokenizer": config.tokenizer,
                               "composition": config.composition, "variants": list(config.variants)}
    if config.train is not None:
        t0 = time.perf_counter()
        samples = build_train_samples(config, fitter, progress)
        path = out_dir / "train" / shard_name(0)
        write_jsonl(path, (to_dict(s) for s in samples))
        summary["train"] = {"path": str(path), "samples": len(samples),
                            "tokens": _token_stats([s.tokens["total"] for s in samples]),
                            "seconds": round(time.perf_counter() - t0, 2)}
        if config.export_formats:
            summary["train"]["export"] = sorted(_export(config, samples, out_dir))
    if config.test is not None:
        summary["test"] = {}
        for variant in config.variants:
            t0 = time.perf_counter()
            items = build_test_items(config, fitter, variant, progress)
            path = out_dir / "test" / f"{variant}.jsonl"
            write_jsonl(path, (to_dict(i) for i in items))
            summary["test"][variant] = {"path": str(path), "items": len(items),
                                        "tokens": _token_stats([i.meta["tokens"]["total"] for i in items]),
                                        "seconds": round(time.perf_counter() - t0, 2)}
    progress.finish()
    summary["seconds"] = round(time.perf_counter() - began, 2)
    atomic_write_text(out_dir / "summary.json", dumps(summary) + "\n")
    log.info("NIAH build done in %.1f s: %s", summary["seconds"], out_dir)
    return summary
