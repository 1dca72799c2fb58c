"""Hugging Face Hub conventions for export folders: dataset-card YAML, per-format cards, push_to_hub.

Each format folder gets a README.md whose YAML header declares its data files, so
`datasets.load_dataset("<run>/export/<format>")` reads exactly the data (not manifest.json or
dataset_info.json) and the Hub renders the folder as a dataset. The run's dataset card (the report
stage) carries the same header with one config per format, relative to the export folder.
`push_export` uploads a run's export folder to one Hub dataset repository, one config per format,
through `datasets` (`Dataset.push_to_hub`), after the card.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctxsynth.errors import PathNotFound

log = logging.getLogger(__name__)

# seed source -> (Hub licence id, what the seeds are and their licence)
SEED_LICENCES = {
    "squad": ("cc-by-sa-4.0", "SQuAD v2.0 dev questions and answers (CC BY-SA 4.0)"),
    "hotpotqa": ("cc-by-sa-4.0", "HotpotQA dev-distractor questions and answers (CC BY-SA 4.0)"),
}


@dataclass
class CardInfo:
    """What a dataset card states beyond the rows: licence, language, seeds, generator, tokenizer."""

    license: str = "other"
    language: list[str] = field(default_factory=lambda: ["en"])
    seed_sources: list[str] = field(default_factory=list)  # "what, licence" lines
    generators: list[str] = field(default_factory=list)
    tokenizer: str = ""
    pretty_name: str = "ctxsynth"


def seed_source_info(source: str, path: str | None) -> tuple[str, str]:
    """(licence id for the card header, a line naming the seeds and their licence)."""
    if source in SEED_LICENCES:
        return SEED_LICENCES[source]
    if source == "hub":
        return "other", f"Hub dataset `{path}` (see its own card for the licence)"
    return "other", f"{source} file `{path}` (licence: as stated by its owner; not known to ctxsynth)"


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "n>10M"


def card_header(info: CardInfo, n_rows: int, configs: dict[str, list[dict[str, Any]]]) -> str:
    """The YAML front matter. configs: {config name: [{"path", "bytes", "rows"} of its data files]};
    the first config is the default.

    Each config's `dataset_info` (row count, bytes) is declared too: it is what the Hub shows, and
    `datasets` hashes it into the cache key of a local folder. Without it, two export folders of the
    same name (runs/a/export/trl_messages, runs/b/export/trl_messages) would share a cache entry
    and the second load would silently return the first one's rows.
    """
    entries, infos = [], []
    for i, (name, files) in enumerate(configs.items()):
        entry: dict[str, Any] = {"config_name": name,
                                 "data_files": [{"split": "train", "path": f["path"]} for f in files]}
        if i == 0 and len(configs) > 1:
            entry["default"] = True
        entries.append(entry)
        size = sum(int(f["bytes"]) for f in files)  # bytes of the data files as written
        infos.append({"config_name": name, "download_size": size,
                      "splits": [{"name": "train", "num_bytes": size, "num_examples": sum(int(f["rows"]) for f in files)}]})
    meta = {"license": info.license, "language": list(info.language),
            "task_categories": ["text-generation", "question-answering"], "size_categories": [size_category(n_rows)],
            "pretty_name": info.pretty_name, "tags": ["long-context", "synthetic", "ctxsynth"], "configs": entries,
            "dataset_info": infos}
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def load_export_folder(folder: Path) -> Any:
    """An export folder's rows as a datasets.Dataset, from the data files its manifest lists (cached
    by file, so a re-export into the same folder is never served from a stale cache)."""
    import json

    from datasets import load_dataset

    manifest = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    files = [str(Path(folder) / e["path"]) for e in manifest["files"] if e.get("rows") is not None]
    builder = "parquet" if files[0].endswith(".parquet") else "json"
    return load_dataset(builder, data_files=files, split="train")


def training_lines(notes: dict[str, Any]) -> list[str]:
    settings = ", ".join(f"`{k}={v}`" for k, v in notes.get("settings", {}).items() if v is not None)
    head = "trains the answer only by default" if notes.get("answer_only_by_default") else \
        "**does NOT train the answer only by default**"
    lines = [f"- {notes.get('trainer')}: {head}. Set: {settings or '-'}."]
    if notes.get("warning"):
        lines.append(f"- **Warning**: {notes['warning']}")
    if notes.get("note"):
        lines.append(f"- {notes['note']}")
    return lines


def format_readme(fmt: str, manifest: dict[str, Any], info: CardInfo) -> str:
    """The card of one format folder: header + rows, provenance and how to load and train."""
    data_files = [e for e in manifest["files"] if e.get("rows") is not None]
    n = manifest["counts"]["total"]
    lines = [card_header(info, n, {"default": data_files}),
             f"# {info.pretty_name}: `{fmt}` export", "",
             f"{n:,} rows ({manifest['counts']['long']:,} long-context samples, "
             f"{manifest['counts']['general']:,} general) made by context synthesis with ctxsynth.", "",
             "```python", "from datasets import load_dataset",
             'rows = load_dataset("path/to/this/folder", split="train")', "```", "",
             "## Training", ""]
    lines += training_lines(manifest.get("training", {}))
    tokens = manifest.get("tokens", {}).get("total") or {}
    lines += ["", "## Provenance", "",
              f"- Tokenizer used for every count: `{info.tokenizer}`; tokens per sample: "
              + (f"min {tokens.get('min')}, mean {tokens.get('mean')}, max {tokens.get('max')}." if tokens else "-")]
    lines += [f"- Seeds: {s}" for s in info.seed_sources] or ["- Seeds: not recorded"]
    lines += [f"- Generator: `{g}`" for g in info.generators]
    lines += ["- `manifest.json` beside this card: file hashes, counts, token statistics and the config hash.", ""]
    return "\n".join(lines)


def push_export(export_dir: Path, repo_id: str, *, private: bool, card: str | None = None,
                attachments: Sequence[Path] = (), token: str | None = None) -> list[str]:
    """Upload each format folder of export_dir as one config of the Hub dataset `repo_id`.

    The card (README.md text) is uploaded first so that `Dataset.push_to_hub`, which merges its
    configs into the repository's README, keeps the card's text; `attachments` (the card's plots) go
    to report/ in the repository. Returns the pushed config names.
    The token comes from the environment (HF_TOKEN) or the huggingface-cli login unless given.
    """
    from huggingface_hub import HfApi

    folders = sorted(p.parent for p in Path(export_dir).glob("*/manifest.json"))
    if not folders:
        raise PathNotFound(f"{export_dir}: no finished export folder (none has a manifest.json) to push")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if card is not None:
        api.upload_file(path_or_fileobj=card.encode("utf-8"), path_in_repo="README.md", repo_id=repo_id,
                        repo_type="dataset", commit_message="ctxsynth dataset card")
    for path in attachments:
        api.upload_file(path_or_fileobj=str(path), path_in_repo=f"report/{Path(path).name}", repo_id=repo_id,
                        repo_type="dataset", commit_message=f"ctxsynth report: {Path(path).name}")
    pushed = []
    for folder in folders:
        dataset = load_export_folder(folder)
        log.info("pushing %s (%d rows) to %s as config %r", folder, len(dataset), repo_id, folder.name)
        dataset.push_to_hub(repo_id, config_name=folder.name, private=private, token=token)
        pushed.append(folder.name)
    return pushed
