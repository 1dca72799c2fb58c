"""Export assembled samples in the native formats of the trainers people use.

`export_samples` writes one folder per format under `out_dir` (see `formats` for the table), each
with its data files, a README.md dataset card whose YAML header names the data files (so
`datasets.load_dataset(folder)` and the Hub read exactly the data; `hub`), and a `manifest.json`
written last. Exports stay in the trainer's own dataset types so the trainer does the masking; the
manifest's `training` section says per format whether the target trainer's defaults train the
answer only and what to set otherwise (`training`). Optional mixing with a general SFT file is
described in `mix`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ctxsynth.export.formats import FORMATS
from ctxsynth.export.hub import CardInfo, format_readme
from ctxsynth.export.manifest import MANIFEST_NAME, RowStats, file_entry, manifest_of
from ctxsynth.export.mix import MixConfig
from ctxsynth.export.rows import ExportRow
from ctxsynth.export.stream import entries, long_rows, mixed_rows, stream_formats
from ctxsynth.export.training import extra_files, training_notes
from ctxsynth.io import atomic_write_bytes, atomic_write_text
from ctxsynth.records import Sample

__all__ = ["FORMATS", "MANIFEST_NAME", "CardInfo", "MixConfig", "export_samples"]

log = logging.getLogger(__name__)


def _finish_format(fmt: str, folder: Path, stats: RowStats, side: dict[str, bytes], data_entry: dict[str, Any],
                   meta: dict[str, Any], card: CardInfo) -> dict[str, Any]:
    """Write a folder's side files, README.md and (last) manifest.json; its data file is in place."""
    files = {**side, **extra_files(fmt, meta["tokenizer_name"])}
    manifest = manifest_of(fmt, stats, [data_entry, *entries(files)], **meta)
    manifest["training"] = training_notes(fmt, meta["tokenizer_name"], manifest["tokens"]["total"].get("max"))
    readme = format_readme(fmt, manifest, card).encode("utf-8")
    files["README.md"] = readme
    manifest["files"] = sorted([*manifest["files"], file_entry("README.md", readme, None)], key=lambda e: e["path"])
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_text(folder / MANIFEST_NAME, text)
    log.info("exported %d rows as %s to %s", manifest["counts"]["total"], fmt, folder)
    return manifest


def export_samples(samples: Iterable[Sample], out_dir: Path, formats: Sequence[str], *, config_hash: str,
                   tokenizer_name: str, mix: MixConfig | None = None, seed: int = 0,
                   dataset_name: str = "ctxsynth", card: CardInfo | None = None) -> dict[str, dict[str, Any]]:
    """Write each format to out_dir/<format>/ and return {format: its manifest}.

    Without `mix` the rows keep the input order; with it they are shuffled by `seed`. Every format
    gets the same rows in the same order. `dataset_name` names the LLaMA-Factory dataset_info entry.
    Raises before replacing anything when a format name is unknown or the context-free twin cannot
    be built. `card` supplies the licence, language and provenance lines of each folder's README.md.
    `samples` is read once, as a stream (ctxsynth.export.stream): memory does not grow with it.
    """
    card = card or CardInfo(tokenizer=tokenizer_name, pretty_name=dataset_name)
    formats = list(dict.fromkeys(formats))
    for fmt in formats:
        FORMATS.get(fmt)  # unknown names fail here, with a did-you-mean hint
    out_dir = Path(out_dir)
    with ExitStack() as stack:
        rows: Iterable[ExportRow] = long_rows(samples, twin="context_free" in formats)
        mix_info = None
        if mix is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            rows, mix_info = mixed_rows(rows, mix, seed, out_dir, stack)
        stats, finished = stream_formats(rows, out_dir, formats, dataset_name)
    names = sorted(stats.tokenizers - {tokenizer_name})
    if names:
        log.warning("samples were counted with %s, the export says %s", names, tokenizer_name)
    meta = {"config_hash": config_hash, "tokenizer_name": tokenizer_name, "seed": seed, "mix": mix_info}
    return {fmt: _finish_format(fmt, out_dir / fmt, stats, *finished[fmt], meta, card) for fmt in formats}
