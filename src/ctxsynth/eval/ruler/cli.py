"""The library side of `ctxsynth ruler CONFIG`: build the eval config's RULER items and write them."""

from __future__ import annotations

from pathlib import Path

from ctxsynth import config as cfg
from ctxsynth.errors import ConfigError


def build_from_config(path: Path, overrides: list[str], out_dir: Path) -> list[Path]:
    """Write the RULER items of the eval config at `path` as <out_dir>/<mode>_<length>_<task>.jsonl."""
    from ctxsynth.eval.job import EvalConfig
    from ctxsynth.eval.ruler.generate import build_items, write_items

    config = cfg.load(EvalConfig, path, overrides)
    if not config.ruler.tasks:
        raise ConfigError(f"{path}: the ruler: section names no tasks (ruler.tasks: [all] for RULER's 13); "
                          "see docs/ruler.md")
    tokenizer = config.ruler.tokenizer or config.model.tokenizer
    if not tokenizer:
        raise ConfigError("ruler: set model.tokenizer or ruler.tokenizer (RULER's data is built for a tokenizer)")
    items = build_items(config.ruler, tokenizer, max_model_len=config.model.max_model_len)
    return write_items(items, out_dir)
