"""One run = one directory: the run config saved in it, a folder per stage, completion markers under
`_state`, and running the stages.

    seeds -> filter -> synthesize -> assemble -> export [-> train -> eval] -> report

(train and eval run only when `stages:` lists them.) Each stage writes shard files atomically and a
completion marker per shard, then a DONE marker; `run_all` skips finished stages and finished
shards, and the request cache (cache.sqlite) makes a half-finished shard cheap to redo. The stage
table is ctxsynth.pipeline.stages (the bodies are imported by name when a stage runs); the config
schema is ctxsynth.pipeline.config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ctxsynth import config as cfg
from ctxsynth.errors import ConfigError
from ctxsynth.io import Markers, atomic_write_text, hold_lock, resource_error
from ctxsynth.llm.cache import check_cache
from ctxsynth.llm.spec import redact_config
from ctxsynth.pipeline import rerun
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.executors import Executor, build_executor
from ctxsynth.pipeline.stages import STAGE_NAMES, stage, stage_folder, stages_from
from ctxsynth.progress import Progress
from ctxsynth.seeds.sources import FILE_SOURCES

log = logging.getLogger(__name__)


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ. Keys the old config lacks are not changes: they are options
    added by a newer ctxsynth, at their defaults, so an upgrade does not orphan a run directory."""
    changes = []
    for key, value in new.items():
        if key not in old:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(old[key], dict):
            changes += config_changes(old[key], value, path + ".")
        elif value != old[key]:
            changes.append(path)
    changes += [f"{prefix}{key}" for key in old if key not in new]
    return changes


# keys added after runs were made, with the value at which they hash as if absent: a config that
# leaves them there keeps the config_hash (written into export manifests) it had before they existed
HASHED_AS_ABSENT: dict[tuple[str, str], Any] = {("assemble", "random_draw"): "shuffle"}


class Run:
    """A run directory and its config; `base_dir` resolves relative paths in the config (`resolve`)."""

    def __init__(self, config: RunConfig, base_dir: Path | None = None) -> None:
        self.config = config
        self.base_dir = Path(base_dir or Path.cwd())
        self.dir = self.resolve(config.out_dir) / config.name
        self.state = self.dir / "_state"
        self._executor: Executor | None = None

    def resolve(self, value: str | Path) -> Path:
        """A path from the config: absolute as given, relative against the directory the run was started from."""
        path = Path(value)
        return path if path.is_absolute() else self.base_dir / path

    def executor(self) -> Executor:
        """The run's executor, started on first use (a local Ray starts here) and kept for the run."""
        if self._executor is None:
            c = self.config
            self._executor = build_executor(c.executor, c.workers, c.ray)
        return self._executor

    def close_executor(self) -> None:
        """Stop the worker processes (and a Ray started for the run)."""
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def stage_dir(self, name: str) -> Path:
        return self.dir / stage_folder(name)

    def input_stage(self, name: str) -> str:
        """The stage whose output `name` reads: its first input stage that this run includes (else its last input)."""
        inputs = stage(name).inputs
        return next((s for s in inputs if s in self.config.stages), inputs[-1])

    def input_dir(self, name: str) -> Path:
        """The folder a stage reads (see input_stage)."""
        return self.stage_dir(self.input_stage(name))

    def input_counts(self, name: str) -> list[int]:
        """Records in each shard of the folder a stage reads, from that stage's shard markers."""
        return [int(s.get("n_out", 0)) for s in self.markers(self.input_stage(name)).shard_stats()]

    def markers(self, name: str) -> Markers:
        return Markers(self.state, name)

    def lock(self) -> None:
        """Become the one writer of the run directory (an OS lock held until this process exits, kill
        -9 included); another process holding it is a RunLocked error naming its PID."""
        hold_lock(self.state / "lock", self.dir)

    def verify_inputs(self, name: str) -> None:
        """The shard files of every finished stage that `name` reads are there, at the sizes their
        markers recorded: else a DamagedFile naming the file and the stage to rerun (never a smaller
        output). Checked before a stage runs and before anything downstream is discarded."""
        for source in stage(name).inputs:
            markers = self.markers(source)
            if markers.stage_done():
                markers.stage_summary()  # a garbled DONE is named too
                markers.verify(self.stage_dir(source))

    def saved_view(self) -> dict[str, Any]:
        """The config as written to config.yaml: credentials inside any base_url replaced by ***."""
        return redact_config(cfg.to_dict(self.config))

    def config_hash(self) -> str:
        """Hash of the settings that can change output bytes (not rerun.NO_OUTPUT_KEYS, not the shard count)."""
        view = rerun.without_keys(self.saved_view(), rerun.NO_OUTPUT_KEYS + rerun.LAYOUT_KEYS)
        for (section, key), default in HASHED_AS_ABSENT.items():
            if key in view.get(section, {}) and view[section][key] == default:
                view[section] = {k: v for k, v in view[section].items() if k != key}
        return hashlib.sha256(json.dumps(view, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]

    def prepare(self, overwrite: bool = False, force: str | None = None) -> None:
        """Create the run directory and save the resolved config. A config change reruns the first stage
        that reads a changed key and every later one: automatically when that is assemble or later (no
        requests are paid for), with --overwrite before. `force` invalidates a stage and every later one."""
        self.lock()
        check_cache(self.dir / "cache.sqlite")  # before any stage is discarded below
        saved = self.dir / "config.yaml"
        view = self.saved_view()
        if saved.exists():
            old = cfg.load_yaml(saved)
            changed = config_changes(old, view)
            first = rerun.first_affected(changed, list(old.get("stages", STAGE_NAMES)), self.config.stages)
            if (first is not None and STAGE_NAMES.index(first) < STAGE_NAMES.index("assemble") and not overwrite
                    and self.has_output_from(first)):
                shown = ", ".join(changed[:8]) + (", ..." if len(changed) > 8 else "")
                raise ConfigError(
                    f"{self.dir} holds a run made with a different config ({saved}; changed: {shown}); choose "
                    f"another name, or pass --overwrite to discard the {first} stage and the ones after it "
                    "(the request cache is kept, so unchanged requests are not paid twice)")
            if first is not None:
                log.info("config changed (%s): %s and later stages will rerun", ", ".join(changed), first)
                self.verify_inputs(first)
                self.invalidate(first)
        if force is not None:
            self.verify_inputs(stage(force).name)
            self.invalidate(stage(force).name)
        self.check_seed_inputs()
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, yaml.safe_dump(view, sort_keys=False, allow_unicode=True))

    def has_output_from(self, name: str) -> bool:
        """Whether stage `name` or a later one finished a shard: a config change then has outputs to
        discard (else, e.g. after a wrong base_url stopped the first request, there is nothing to ask about)."""
        return any(self.markers(later).stage_done() or any(self.markers(later).dir.glob("shard-*.done"))
                   for later in stages_from(name) if self.markers(later).dir.is_dir())

    def invalidate(self, name: str) -> None:
        """Discard the outputs and markers of stage `name` and of every stage after it."""
        for later in stages_from(name):
            shutil.rmtree(self.stage_dir(later), ignore_errors=True)
            shutil.rmtree(self.state / later, ignore_errors=True)

    def seed_path(self) -> Path | None:
        """The seed file (or folder) of a file source, resolved; None for built-in and Hub sources."""
        s = self.config.seeds
        if s.source not in FILE_SOURCES or not s.path:
            return None
        return self.resolve(s.path)

    def record_seed_inputs(self) -> None:
        path = self.seed_path()
        if path is not None and path.exists():
            rerun.write_inputs(self.state / "seeds" / "inputs.json", rerun.seed_inputs(path))

    def check_seed_inputs(self) -> None:
        """A seed file changed since the seeds stage read it is an error that names it, never ignored."""
        recorded = self.state / "seeds" / "inputs.json"
        path = self.seed_path()
        if path is None or not recorded.exists() or not self.markers("seeds").stage_done():
            return
        changed = rerun.changed_inputs(json.loads(recorded.read_text()), rerun.seed_inputs(path))
        if changed:
            raise ConfigError(
                f"seed input changed since the seeds stage read it: {', '.join(changed[:5])}; rerun with "
                "--force seeds to read it again (later stages rerun too; cached requests are not paid twice)")


def run_stage(run: Run, name: str, progress: Progress | None = None, force: bool = False,
              keep_executor: bool = False) -> dict[str, Any] | None:
    """Run one stage unless it is complete (force reruns it from scratch and invalidates later stages).
    The executor's workers stop at the end unless `keep_executor` (run_all keeps them for the next stage)."""
    run.lock()
    markers = run.markers(name)
    if force:
        run.verify_inputs(name)
        run.invalidate(name)
    if markers.stage_done():
        log.info("%s: already complete, skipped", name)
        return None
    run.verify_inputs(name)
    try:
        return stage(name).function(run, progress)
    except OSError as exc:  # a full disk, a missing permission: the user's to fix (one line), not a bug
        error = resource_error(exc)
        if error is None:
            raise
        raise error from exc
    finally:
        if not keep_executor:
            run.close_executor()


def run_all(run: Run, progress_factory: Callable[[], Progress] | None = None) -> dict[str, Any]:
    results = {}
    try:
        for name in run.config.stages:
            progress = progress_factory() if progress_factory else None
            results[name] = run_stage(run, name, progress, keep_executor=True)
    finally:
        run.close_executor()
    return results
