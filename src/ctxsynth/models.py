"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file on PyPI.

transformers dequantises the GGUF on load (slow, needs `gguf`); we do that once and keep the result
as safetensors under the user's cache directory, which later loads in about a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from ctxsynth import assets
from ctxsynth.errors import ConfigError

log = logging.getLogger(__name__)

EMBEDDED_NAME = "smollm2-135m-instruct"
EMBEDDED_ALIASES = {EMBEDDED_NAME, "smollm2", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"}


def cache_root() -> Path:
    base = os.environ.get("CTXSYNTH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ctxsynth"
    )
    return Path(base)


def is_embedded(name: str) -> bool:
    return name in EMBEDDED_ALIASES


def embedded_model_dir() -> Path:
    """A transformers model folder (safetensors + tokenizer) for the embedded model, made once."""
    target = cache_root() / "models" / EMBEDDED_NAME
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    gguf = assets.smollm2_gguf()
    log.info("converting %s to safetensors under %s (once)", gguf.name, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # the dequantised weights are plain tensors: forget the GGUF quantizer so save_pretrained
    # writes an ordinary checkpoint that loads without `gguf`
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def weights_fingerprint(path: Path) -> str:
    """Cheap content fingerprint of a model folder's weight files: names, sizes and their first MiB.

    A fine-tuned checkpoint keeps config.json unchanged, so caches keyed on the config alone would
    let two different models share entries; this tells them apart without hashing gigabytes.
    """
    digest = hashlib.sha256()
    for file in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(json.dumps([file.name, file.stat().st_size]).encode())
        with file.open("rb") as f:
            digest.update(f.read(1 << 20))
    return digest.hexdigest()[:16]


def resolve_model_path(name: str) -> str:
    """The embedded aliases map to the cached folder; anything else passes through."""
    return str(embedded_model_dir()) if is_embedded(name) else name


DTYPES = ("float32", "bfloat16", "float16")


def pick_dtype(dtype: str, device: str) -> str:
    """The one dtype policy of every local model (generation, scoring): a name in DTYPES.

    "auto": bfloat16 on a CUDA GPU that supports it (float16 on older ones), float32 on a CPU, so a
    CPU run gives the same bytes on every machine (bf16 matmuls differ between CPU generations)."""
    if dtype != "auto":
        if dtype not in DTYPES:
            raise ConfigError(f"dtype {dtype!r}: use one of auto, {', '.join(DTYPES)}")
        return dtype
    if not device.startswith("cuda"):
        return "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
