"""Build RULER's task data with RULER's own generator scripts, and turn it into EvalItems.

For each (template mode, length, task) this runs `long_context_eval/data/synthetic/<generator>.py`
in a subprocess with the arguments `data/prepare.py` gives it (its seed 42, its tokens_to_generate,
the task's arguments from synthetic.yaml, the mode's template), for the model's Hugging Face
tokenizer (`--tokenizer_type hf`). The argument list goes to the script directly instead of through
prepare.py's shell string, so a chat template's quotes or dollar signs reach it unchanged; for
RULER's own templates the two are the same (a test compares them with prepare.py's output).

The generators' sentence splitter is NLTK's punkt (punkt_tab data). No PyPI package of NLTK data
installs it where NLTK looks, so the subprocesses get NLTK_DATA pointing at the punkt_tab copy that
llama-index-core ships (installed --no-deps, never imported); a user's own NLTK_DATA comes first.

Generated files are cached under <CTXSYNTH_CACHE>/ruler/<key>/ (RULER's layout,
<task>/validation.jsonl), the key hashing everything that changes the data: the package version,
the tokenizer files, the template, length, sample count. Base and fine-tuned models that share a
tokenizer share the data.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxsynth.errors import ConfigError, MissingDependency, UserError
from ctxsynth.eval.ruler.tasks import (
    CHAT_MODE,
    RANDOM_SEED,
    SUBSET,
    RulerSets,
    mode_template,
    ruler_dir,
    task_config,
)
from ctxsynth.io import read_jsonl
from ctxsynth.records import EvalItem

log = logging.getLogger(__name__)

PUNKT_HOST = "llama-index-core==0.14.25"
METRICS = {"string_match_all": "ruler_string_match_all", "string_match_part": "ruler_string_match_part"}


@dataclass(frozen=True)
class Cell:
    """One generator run: a task at a length in a template mode."""

    mode: str
    length: int
    task: str


def nltk_data_dir() -> Path:
    """NLTK data holding punkt_tab: the copy inside llama-index-core (located, not imported)."""
    from ctxsynth.assets import package_dir

    try:
        root = package_dir("llama_index") / "core" / "_static" / "nltk_cache"
    except UserError:
        root = Path("/nonexistent")
    if not (root / "tokenizers" / "punkt_tab" / "english").is_dir():
        raise MissingDependency(
            "RULER's generators split sentences with NLTK's punkt_tab data, taken from llama-index-core's "
            f"copy; run: pip install --no-deps {PUNKT_HOST} (make setup does)")
    return root


def _check_dependencies() -> None:
    missing = [m for m in ("nltk", "wonderwords", "tenacity", "scipy", "pandas")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(f"RULER's generators need {', '.join(missing)}: pip install 'ctxsynth[ruler]'")


def tokenizer_folder(spec: str) -> Path:
    """The Hugging Face tokenizer folder RULER's generators load (AutoTokenizer.from_pretrained)."""
    from ctxsynth.models import is_embedded, resolve_model_path

    if spec.startswith("tiktoken:"):
        raise ConfigError("RULER's data is built with a Hugging Face tokenizer folder; tiktoken encodings are "
                          "not supported (set ruler.tokenizer to the model's folder)")
    path = Path(resolve_model_path(spec) if is_embedded(spec) else spec)
    if path.is_file():
        path = path.parent
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise ConfigError(f"ruler tokenizer {spec!r}: {path} holds no tokenizer.json or tokenizer_config.json")
    return path


def _tokenizer_fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"):
        if (folder / name).is_file():
            digest.update(name.encode() + (folder / name).read_bytes())
    return digest.hexdigest()


def command(cell: Cell, template: str, tokenizer: Path, num_samples: int, save_dir: Path,
            remove_newline_tab: bool = False) -> list[str]:
    """The generator invocation prepare.py builds for this cell (one chunk: seed 42, pre_samples 0)."""
    config = task_config(cell.task)
    script = ruler_dir() / "data" / "synthetic" / f"{config['task']}.py"
    argv = [sys.executable, str(script), "--save_dir", str(save_dir), "--save_name", cell.task,
            "--subset", SUBSET, "--tokenizer_path", str(tokenizer), "--tokenizer_type", "hf",
            "--max_seq_length", str(cell.length), "--tokens_to_generate", str(config["tokens_to_generate"]),
            "--num_samples", str(num_samples), "--random_seed", str(RANDOM_SEED)]
    for key, value in config["args"].items():
        argv += [f"--{key}", str(value)]
    if remove_newline_tab:
        argv.append("--remove_newline_tab")
    if config["task"] == "qa":
        argv += ["--pre_samples", "0"]
    return [*argv, "--template", template]


def generator_env() -> dict[str, str]:
    env = dict(os.environ)
    ours = str(nltk_data_dir())
    env["NLTK_DATA"] = os.pathsep.join(p for p in (os.environ.get("NLTK_DATA"), ours) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def _cell_key(cell: Cell, template: str, tokenizer: Path, sets: RulerSets) -> str:
    facts = {
        "package": importlib.metadata.version("nvidia-long-context-eval"), "tokenizer": _tokenizer_fingerprint(tokenizer),
        "task": cell.task, "config": task_config(cell.task), "length": cell.length, "template": template,
        "num_samples": sets.num_samples, "remove_newline_tab": sets.remove_newline_tab, "seed": RANDOM_SEED,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _run_cell(cell: Cell, template: str, tokenizer: Path, sets: RulerSets, cache: Path) -> Path:
    """The cell's validation.jsonl, generated unless cached."""
    folder = cache / _cell_key(cell, template, tokenizer, sets)
    target = folder / cell.task / f"{SUBSET}.jsonl"
    if target.is_file():
        return target
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    argv = command(cell, template, tokenizer, sets.num_samples, tmp, sets.remove_newline_tab)
    log.info("RULER %s at %d (%s): generating %d samples", cell.task, cell.length, cell.mode, sets.num_samples)
    done = subprocess.run(argv, env=generator_env(), capture_output=True, text=True, check=False)
    produced = tmp / cell.task / f"{SUBSET}.jsonl"
    if done.returncode != 0 or not produced.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
        raise UserError(f"RULER's generator for {cell.task} at {cell.length} tokens failed "
                        f"(exit {done.returncode}):\n" + "\n".join(tail))
    (tmp / "cell.json").write_text(json.dumps({"cell": cell.__dict__, "argv": argv[1:]}, indent=1), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return target


def cell_items(cell: Cell, path: Path) -> list[EvalItem]:
    config = task_config(cell.task)
    metric = METRICS["string_match_part" if config["task"] == "qa" else "string_match_all"]
    items = []
    for row in read_jsonl(path):
        meta: dict[str, Any] = {
            "prompting": "ruler", "chat": False, "fitted": True,
            "ruler": {"task": cell.task, "length": cell.length, "mode": cell.mode, "index": row["index"],
                      "tokens": row.get("length"),  # RULER's count: prompt tokens + tokens_to_generate
                      "sha": hashlib.sha256(row["input"].encode()).hexdigest()[:16]},
        }
        items.append(EvalItem(id=f"ruler/{cell.mode}/{cell.length}/{cell.task}/{row['index']}",
                              task=f"ruler/{cell.mode}/{cell.task}", prompt=row["input"],
                              answers=[str(a) for a in row["outputs"]], metric=metric,
                              max_new_tokens=int(config["tokens_to_generate"]), meta=meta))
    return items


def cells(sets: RulerSets) -> list[Cell]:
    return [Cell(mode, length, task) for mode in sets.modes for length in sets.lengths for task in sets.tasks]


def build_items(sets: RulerSets, tokenizer: str, *, max_model_len: int | None = None,
                cache_dir: Path | None = None, workers: int | None = None) -> list[EvalItem]:
    """RULER's items for every (mode, length, task) of `sets`, built for `tokenizer` (a Hugging Face
    folder or 'smollm2'); generator runs go `workers` at a time (default: the CPU count, at most 8)."""
    from ctxsynth.models import cache_root
    from ctxsynth.tokenize import load_tokenizer

    _check_dependencies()
    if max_model_len is not None and max(sets.lengths) > max_model_len:
        raise ConfigError(f"ruler.lengths go up to {max(sets.lengths)} tokens, beyond model.max_model_len="
                          f"{max_model_len}: RULER's lengths are the whole sequence (prompt and answer)")
    folder = tokenizer_folder(sets.tokenizer or tokenizer)
    tok = load_tokenizer(str(folder)) if CHAT_MODE in sets.modes else None
    cache = Path(sets.cache_dir or cache_dir or cache_root() / "ruler")
    todo = cells(sets)
    templates = {cell: mode_template(task_config(cell.task), cell.mode, tok) for cell in todo}
    n = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n) as pool:
        paths = list(pool.map(lambda c: _run_cell(c, templates[c], folder, sets, cache), todo))
    items = [item for cell, path in zip(todo, paths, strict=True) for item in cell_items(cell, path)]
    log.info("RULER: %d items (%d tasks x %d lengths x %d modes)", len(items), len(sets.tasks),
             len(sets.lengths), len(sets.modes))
    return items


def write_items(items: Sequence[EvalItem], out_dir: Path) -> list[Path]:
    """One EvalItem JSONL per mode, length and task: <out_dir>/<mode>_<length>_<task>.jsonl (a
    folder that an eval config's `items:` reads)."""
    from ctxsynth.io import write_jsonl
    from ctxsynth.records import to_dict

    groups: dict[Path, list[EvalItem]] = {}
    for item in items:
        r = item.meta["ruler"]
        groups.setdefault(Path(out_dir) / f"{r['mode']}_{r['length']}_{r['task']}.jsonl", []).append(item)
    for path, group in groups.items():
        write_jsonl(path, (to_dict(i) for i in group))
    return list(groups)
