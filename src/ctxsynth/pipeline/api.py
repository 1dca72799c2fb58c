"""The Python API for notebooks and scripts: build a run config in code, run stages, get datasets back.

    import ctxsynth
    pipe = ctxsynth.Pipeline.from_dict({"name": "nb", "seeds": {"source": "squad", "limit": 8}, ...})
    pipe.run()                                  # every stage of the config (finished ones are skipped)
    samples = pipe.dataset("assemble")          # datasets.Dataset of the assembled samples
    train = pipe.export("trl_prompt_completion")  # datasets.Dataset, as TRL's SFTTrainer takes it

It is the CLI's library underneath (`ctxsynth run` does the same calls): the same run directory,
resume, request cache and checks. A dict config goes through the YAML loader, so unknown keys and
wrong types fail the same way; `overrides` take the CLI's `key.sub=value` form. See docs/api.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxsynth import config as cfg
from ctxsynth.export.hub import load_export_folder
from ctxsynth.io import read_shards
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.run import Run, run_stage
from ctxsynth.pipeline.stages import RECORD_STAGES, STAGE_NAMES

log = logging.getLogger(__name__)

__all__ = ["Pipeline", "RunConfig"]


def _dataset(records: list[dict[str, Any]]) -> Any:
    """A datasets.Dataset of records; nested fields whose shape varies between records (meta,
    verdicts, answers that are a string here and a list there) are kept as JSON strings."""
    from datasets import Dataset

    if not records:
        return Dataset.from_list([])
    try:
        return Dataset.from_list(records)
    except (TypeError, ValueError, Exception) as error:  # pyarrow raises ArrowInvalid / ArrowTypeError
        log.debug("mixed nested types (%s): JSON-encoding the nested columns", error)
    encoded = [{k: json.dumps(v, sort_keys=True, ensure_ascii=False) if isinstance(v, dict | list) else v
                for k, v in r.items()} for r in records]
    return Dataset.from_list(encoded)


class Pipeline:
    """A run directory and its config, with the stages as methods and the outputs as datasets."""

    def __init__(self, config: RunConfig, base_dir: str | Path | None = None, overwrite: bool = False) -> None:
        self.run_ = Run(config, base_dir=Path(base_dir) if base_dir is not None else None)
        self.run_.prepare(overwrite=overwrite)

    @classmethod
    def from_dict(cls, data: dict[str, Any], overrides: Sequence[str] = (), base_dir: str | Path | None = None,
                  overwrite: bool = False) -> Pipeline:
        """A config given as a dict (the YAML file's content), checked like a YAML file."""
        merged = cfg.apply_overrides(data, list(overrides))
        return cls(cfg.from_dict(RunConfig, merged), base_dir, overwrite)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = (), base_dir: str | Path | None = None,
                  overwrite: bool = False) -> Pipeline:
        return cls(cfg.load(RunConfig, Path(path), list(overrides)), base_dir, overwrite)

    @property
    def config(self) -> RunConfig:
        return self.run_.config

    @property
    def dir(self) -> Path:
        """The run directory (runs/<name> under out_dir)."""
        return self.run_.dir

    def run(self, stages: Sequence[str] | None = None, force: bool = False) -> dict[str, Any]:
        """Run `stages` (default: the config's) in order; finished ones are skipped unless `force`.
        Returns {stage: its stats, or None when it was already complete}."""
        chosen = list(stages) if stages is not None else list(self.config.stages)
        unknown = [s for s in chosen if s not in STAGE_NAMES]
        if unknown:
            raise cfg.ConfigError(f"unknown stage(s) {unknown}; known, in order: {', '.join(STAGE_NAMES)}")
        return {stage: run_stage(self.run_, stage, force=force) for stage in chosen}

    def records(self, stage: str, rejected: bool = False) -> list[dict[str, Any]]:
        """The records a stage wrote (its rejected ones with `rejected=True`), as plain dicts."""
        if stage not in RECORD_STAGES:
            raise ValueError(f"stage {stage!r} writes no records; one of {', '.join(RECORD_STAGES)}")
        folder = self.run_.stage_dir(stage)
        return list(read_shards(folder / "rejected" if rejected else folder))

    def dataset(self, stage: str, rejected: bool = False) -> Any:
        """A stage's records (or its rejected ones) as a datasets.Dataset."""
        return _dataset(self.records(stage, rejected))

    def export(self, fmt: str) -> Any:
        """One export format as a datasets.Dataset (the data files its manifest lists)."""
        folder = self.run_.stage_dir("export") / fmt
        if not (folder / "manifest.json").exists():
            raise FileNotFoundError(f"{folder}: no finished export {fmt!r}; run the export stage with "
                                    f"export.formats including {fmt!r}")
        return load_export_folder(folder)

    @property
    def card(self) -> Path:
        """The dataset card (report stage)."""
        return self.run_.stage_dir("report") / "README.md"
