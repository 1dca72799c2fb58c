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
from pathlib import Path
from typing import Any

from ctxsynth.export.formats import FORMATS
from ctxsynth.export.hub import CardInfo, format_readme
from ctxsynth.export.manifest import MANIFEST_NAME, build_manifest, file_entry
from ctxsynth.export.mix import MixConfig, mix_rows
from ctxsynth.export.rows import ExportRow, context_free, row_from_sample
from ctxsynth.export.training import extra_files, training_notes
from ctxsynth.io import atomic_write_bytes, atomic_write_text
from ctxsynth.records import Sample

__all__ = ["FORMATS", "MANIFEST_NAME", "CardInfo", "MixConfig", "export_samples"]

log = logging.getLogger(__name__)
DATA_SUFFIXES = (".jsonl", ".parquet")


def _write_format(fmt: str, rows: Sequence[ExportRow], folder: Path, meta: dict[str, Any],
                  card: CardInfo) -> dict[str, Any]:
    writer = FORMATS.get(fmt)
    files = writer(rows, meta.pop("dataset_name"))
    files.update(extra_files(fmt, meta["tokenizer_name"]))
    # a stale manifest must not vouch for files that are about to change
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    data_files = [name for name in files if name.endswith(DATA_SUFFIXES)]
    manifest = build_manifest(fmt, rows, files, data_files=data_files, **meta)
    manifest["training"] = training_notes(fmt, meta["tokenizer_name"], manifest["tokens"]["total"].get("max"))
    readme = format_readme(fmt, manifest, card).encode("utf-8")
    files["README.md"] = readme
    manifest["files"] = sorted([*manifest["files"], file_entry("README.md", readme, None)], key=lambda e: e["path"])
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_text(folder / MANIFEST_NAME, text)
    log.info("exported %d rows as %s to %s", len(rows), fmt, folder)
    return manifest


def export_samples(samples: Iterable[Sample], out_dir: Path, formats: Sequence[str], *, config_hash: str,
                   tokenizer_name: str, mix: MixConfig | None = None, seed: int = 0,
                   dataset_name: str = "ctxsynth", card: CardInfo | None = None) -> dict[str, dict[str, Any]]:
    """Write each format to out_dir/<format>/ and return {format: its manifest}.

    Without `mix` the rows keep the input order; with it they are shuffled by `seed`. Every format
    gets the same rows in the same order. `dataset_name` names the LLaMA-Factory dataset_info entry.
    Raises before writing anything when a format name is unknown or the context-free twin cannot
    be built. `card` supplies the licence, language and provenance lines of each folder's README.md.
    """
    card = card or CardInfo(tokenizer=tokenizer_name, pretty_name=dataset_name)
    formats = list(dict.fromkeys(formats))
    for fmt in formats:
        FORMATS.get(fmt)  # unknown names fail here, with a did-you-mean hint
    rows = [row_from_sample(s) for s in samples]
    if "context_free" in formats:
        for row in rows:
            context_free(row)
    names = sorted({row.sample.tokenizer for row in rows if row.sample is not None} - {tokenizer_name})
    if names:
        log.warning("samples were counted with %s, the export says %s", names, tokenizer_name)
    mix_info = None
    if mix is not None:
        rows, mix_info = mix_rows(rows, mix, seed)
    manifests = {}
    for fmt in formats:
        meta = {"config_hash": config_hash, "tokenizer_name": tokenizer_name, "seed": seed,
                "mix": mix_info, "dataset_name": dataset_name}
        manifests[fmt] = _write_format(fmt, rows, Path(out_dir) / fmt, meta, card)
    return manifests
