"""The export stage's body: stream the assembled samples into every configured trainer format
(ctxsynth.export), with the cards, and push them to the Hub when `export.push_to_hub` names a repo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ctxsynth.export import MixConfig, export_samples
from ctxsynth.export.hub import CardInfo, push_export, seed_source_info
from ctxsynth.io import read_shards
from ctxsynth.pipeline.run import Run
from ctxsynth.progress import Progress
from ctxsynth.records import Sample


def card_info(run: Run) -> CardInfo:
    """What the cards state beyond the rows: licence and seeds (from the seed source), generator, tokenizer."""
    c = run.config
    licence, seeds_line = seed_source_info(c.seeds.source, c.seeds.path)
    return CardInfo(license=c.export.license or licence, language=list(c.export.language), seed_sources=[seeds_line],
                    generators=[f"{c.llm.backend}: {c.llm.model}"], tokenizer=c.assemble.tokenizer,
                    pretty_name=c.export.dataset_name)


def push_if_configured(run: Run, card: str | None, attachments: list[Path] | None = None) -> list[str]:
    """Upload the export folder (and the card) when export.push_to_hub names a repository."""
    ec = run.config.export
    if not ec.push_to_hub:
        return []
    return push_export(run.stage_dir("export"), ec.push_to_hub, private=ec.private, card=card,
                       attachments=attachments or [])


def run_export(run: Run, progress: Progress | None = None) -> dict[str, Any]:
    ec = run.config.export
    n_in = 0

    def samples() -> Iterator[Sample]:  # streamed: export memory does not grow with the samples
        nonlocal n_in
        for d in read_shards(run.input_dir("export")):
            n_in += 1
            yield Sample(**d)

    mix = MixConfig(run.resolve(ec.mix_path), ec.mix_ratio) if ec.mix_path else None
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
