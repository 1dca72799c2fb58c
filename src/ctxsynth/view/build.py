"""Write the page of a run: index.html, its script and style, and the run's data as script files.

The data are JavaScript files that hand JSON to a global (`CTXV.put(kind, n, [...])`), loaded by
adding a <script> element: that works from disk (file://, where Chromium refuses fetch()) and when
served. The index (one short row per seed: id, task, verdict, reason, tokens, depth) is loaded at
start; each stage's records are written in chunks of CHUNK records, and the page loads the chunks of
one sample only when it is opened, so 100,000 samples cost the browser an index, not a DOM.
Every stage is read once, shard by shard; only the index is held in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ctxsynth.errors import InputError
from ctxsynth.io import atomic_write_text, read_jsonl, read_shards
from ctxsynth.view import records

log = logging.getLogger(__name__)

CHUNK = 200  # records per data file
SNIPPET = 160  # characters of an instruction kept in the index (what the search looks at)
ASSETS = ("view.js", "view.css")
# the stage folders of a run directory (stable on-disk layout); the page shows them in this order
FOLDERS = (("seeds", "seeds"), ("filter", "filter"), ("synthesize", "synth"), ("assemble", "assemble"))
EXPORT_PREFERENCE = ("trl_prompt_completion", "trl_messages", "longalign", "llamafactory", "context_free")


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _same_text(digest: bytes | None) -> Callable[[Any], bool]:
    """Whether a value is the text whose digest is `digest`."""
    return lambda text: digest is not None and isinstance(text, str) and _digest(text) == digest


def _js(call: str, *args: Any) -> str:
    """One line of JavaScript handing `args` (as JSON) to the page's CTXV.<call>."""
    return f"CTXV.{call}({','.join(json.dumps(a, ensure_ascii=False, separators=(',', ':')) for a in args)});\n"


class _Chunks:
    """Writes one kind of record in numbered chunk files; returns each record's (chunk, position)."""

    def __init__(self, folder: Path, kind: str) -> None:
        self.folder, self.kind, self.n = folder, kind, 0
        self.buffer: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> list[int]:
        self.buffer.append(record)
        where = [self.n, len(self.buffer) - 1]
        if len(self.buffer) == CHUNK:
            self.flush()
        return where

    def flush(self) -> None:
        if self.buffer:
            # a plain write: the folder is rebuilt whole on every call (the page itself is written last, atomically)
            (self.folder / f"{self.kind}-{self.n}.js").write_text(_js("put", self.kind, self.n, self.buffer), encoding="utf-8")
            self.buffer, self.n = [], self.n + 1


def _kept_and_rejected(folder: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    for record in read_shards(folder):
        yield record, None
    if (folder / "rejected").is_dir():
        for rejected in read_shards(folder / "rejected"):
            record = dict(rejected.get("record") or {})  # a rejected synthesis record has no id of its own
            record.setdefault("id", rejected.get("id"))
            yield record, rejected


def _templates(config: dict[str, Any]):
    """The run's prompt templates (to find the documents' region); None when they cannot be loaded."""
    from ctxsynth.assemble.templates import TemplateSet

    try:
        return TemplateSet(str((config.get("assemble") or {}).get("template", "auto")))
    except Exception as exc:  # a user template file that moved: the page still shows the golds
        log.warning("view: the run's templates cannot be loaded (%s); document boundaries are approximate", exc)
        return None


def _export_folder(run_dir: Path, config: dict[str, Any]) -> tuple[str, Path] | None:
    export = run_dir / "export"
    wanted = [(config.get("train") or {}).get("export_format"), *EXPORT_PREFERENCE]
    for fmt in wanted:
        if fmt and (export / fmt / "data.jsonl").is_file():
            return fmt, export / fmt / "data.jsonl"
    return None


class _Index:
    """One row per seed id; each stage fills in its part."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, Counter] = {}
        self.user_hash: dict[str, bytes] = {}  # each sample's user message, to store the export row's copy as a reference

    def row(self, rid: str) -> dict[str, Any]:
        if rid not in self.rows:
            self.rows[rid] = {"id": rid, "c": {}, "v": "pending", "stage": None, "r": None}
        return self.rows[rid]

    def mark(self, rid: str, stage: str, kind: str, where: list[int], reason: str | None) -> dict[str, Any]:
        row = self.row(rid)
        row["c"][kind] = where
        self.counts.setdefault(stage, Counter())["rejected" if reason else "kept"] += 1
        if reason:
            self.counts.setdefault(f"{stage}:reasons", Counter())[reason] += 1
            row.update(v="rejected", stage=stage, r=reason)
        elif row["v"] != "rejected":
            row.update(v="kept", stage=stage)
        return row


def _read_stages(run_dir: Path, data: Path, config: dict[str, Any], index: _Index) -> None:
    templates = _templates(config)
    for stage, folder in FOLDERS:
        if not (run_dir / folder).is_dir():
            continue
        kind = {"synthesize": "synth", "assemble": "sample"}.get(stage, stage)
        chunks = _Chunks(data, kind)
        for record, rejected in _kept_and_rejected(run_dir / folder):
            rid = str((record.get("seed_id") or record.get("id")) if stage == "assemble" else record.get("id"))
            if stage in ("seeds", "filter"):
                seed = record
            elif stage == "assemble":  # a sample keeps its instruction in meta
                seed = {"instruction": (record.get("meta") or {}).get("instruction"), "task": record.get("task")}
            else:
                seed = record.get("seed") or {}
            if stage == "seeds":
                view = records.seed_view(record, rejected)
            elif stage == "filter":
                view = records.filter_view(record, rejected)
            elif stage == "synthesize":
                view = records.synth_view(record, rejected)
            elif rejected is not None:
                view = records.assemble_rejected_view(rejected)
            else:
                tpl = templates.for_task(record["task"]).split(record["meta"]["instruction"]) if templates else (None, None)
                view = records.sample_view(record, *tpl)
                index.user_hash[rid] = _digest(view["user"])
            row = index.mark(rid, stage, kind, chunks.add(view), rejected.get("reason") if rejected else None)
            if seed.get("instruction") and "q" not in row:
                row.update(q=str(seed["instruction"])[:SNIPPET], t=seed.get("task") or record.get("task"))
            if stage == "synthesize":
                row["a"] = len(record.get("attempts") or [])
            if stage == "assemble" and rejected is None:
                tokens = record.get("tokens") or {}
                row.update(n=tokens.get("total"), b=tokens.get("budget") or tokens.get("target"),
                           d=record.get("gold_depth"), t=record.get("task"))
        chunks.flush()


def _read_export(run_dir: Path, data: Path, config: dict[str, Any], index: _Index) -> str | None:
    found = _export_folder(run_dir, config)
    if found is None:
        return None
    fmt, path = found
    chunks = _Chunks(data, "export")
    for row in read_jsonl(path):
        rid = str(row.get("id"))
        entry = index.rows.get(rid)
        if entry is None:  # a mixed-in general SFT row: not one of this run's seeds
            continue
        view = records.export_view(row, fmt, _same_text(index.user_hash.get(rid)))
        entry["c"]["export"] = chunks.add(view)
        entry.update(v="exported", stage="export")
        index.counts.setdefault("export", Counter())["kept"] += 1
    chunks.flush()
    return fmt


def _read_eval(run_dir: Path) -> dict[str, Any] | None:
    """Per-item predictions beside the references, trained vs base, and the comparison."""
    folder = run_dir / "eval"
    if not folder.is_dir():
        return None
    models: dict[str, dict[str, Any]] = {}
    for name in ("trained", "base"):
        path = folder / name / "predictions.jsonl"
        if path.is_file():
            models[name] = {str(r["id"]): r for r in read_jsonl(path)}
    ids = list(dict.fromkeys(i for m in models.values() for i in m))
    items = []
    for i in ids:
        first = next(m[i] for m in models.values() if i in m)
        items.append({"id": i, "task": first.get("task"), "metric": first.get("metric"),
                      "references": first.get("references"),
                      **{name: {k: m[i].get(k) for k in ("prediction", "score", "finish_reason", "prompt_tokens",
                                                          "truncated_tokens", "error")}
                         for name, m in models.items() if i in m}})
    comparison = folder / "comparison.json"
    return {"models": list(models), "items": items,
            "comparison": json.loads(comparison.read_text()) if comparison.is_file() else None}


def _links(run_dir: Path, page: Path) -> dict[str, str]:
    """The run's own documents, relative to the page: the dataset card, the summary, the comparison."""
    found = {"dataset card": run_dir / "report" / "README.md", "summary": run_dir / "summary.md",
             "eval comparison": run_dir / "eval" / "comparison.md"}
    return {name: os.path.relpath(path.resolve(), page.parent.resolve()) for name, path in found.items() if path.is_file()}


def _overview(run_dir: Path, config: dict[str, Any], index: _Index, export_format: str | None,
              page: Path) -> dict[str, Any]:
    summary = run_dir / "summary.json"
    train = run_dir / "train" / "summary.json"
    return {
        "run": run_dir.name, "path": str(run_dir), "stages": config.get("stages"),
        "model": (config.get("llm") or {}).get("model"), "backend": (config.get("llm") or {}).get("backend"),
        "target_tokens": (config.get("assemble") or {}).get("target_tokens"),
        "distractors": (config.get("assemble") or {}).get("distractors"),
        "export_format": export_format,
        "counts": {k: dict(v) for k, v in index.counts.items()},
        "summary": json.loads(summary.read_text()) if summary.is_file() else None,
        "train": json.loads(train.read_text()) if train.is_file() else None,
        "links": _links(run_dir, page),
    }


def _index_rows(index: _Index) -> list[dict[str, Any]]:
    order = {"exported": 0, "kept": 1, "pending": 2, "rejected": 3}
    return [{k: v for k, v in r.items() if v is not None} for r in
            sorted(index.rows.values(), key=lambda r: order.get(r["v"], 9))]


def build_view(run_dir: Path, out: Path | None = None) -> Path:
    """Write the page of `run_dir` (default RUN_DIR/view/index.html, its files in index_files/ beside
    it) and return the page's path."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir}: not a run directory (no config.yaml); give the folder `ctxsynth run` wrote")
    page = Path(out) if out is not None else run_dir / "view" / "index.html"
    if page.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {page}: the page is one .html file (its data go in a folder beside it)")
    files = page.with_name(f"{page.stem}_files")
    if files.exists():
        shutil.rmtree(files)
    data = files / "data"
    data.mkdir(parents=True)
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    index = _Index()
    _read_stages(run_dir, data, config, index)
    export_format = _read_export(run_dir, data, config, index)
    rows = _index_rows(index)
    atomic_write_text(data / "index.js", _js("index", rows))
    atomic_write_text(data / "run.js", _js("run", _overview(run_dir, config, index, export_format, page)))
    atomic_write_text(data / "eval.js", _js("evaluation", _read_eval(run_dir)))
    assets = resources.files("ctxsynth.view") / "assets"
    for name in ASSETS:
        (files / name).write_text(assets.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
    html = assets.joinpath("index.html").read_text(encoding="utf-8")
    title = run_dir.name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    atomic_write_text(page, html.replace("{{FILES}}", files.name).replace("{{TITLE}}", title))
    log.info("view: %d seeds, page %s", len(rows), page)
    return page
