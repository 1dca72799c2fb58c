"""Read a run directory into a small summary: counts, lengths, usage, rejections, verdicts.

Only the few fields the report needs are kept per record (never whole contexts), so a large run
summarises in bounded memory. Every section is optional: a partial run (say seeds and synth only)
gives a summary with empty sample fields, and the card and plots skip what is missing.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctxsynth.io import Markers, read_shards
from ctxsynth.pipeline.stages import STAGE_NAMES, stage_folder

log = logging.getLogger(__name__)

STAGE_ORDER = STAGE_NAMES
PASS_KEYS = ("ok", "pass", "passed", "keep", "kept", "supported")


@dataclass
class StageInfo:
    name: str
    done: bool
    tracked: bool  # has completion markers; stages run outside the runner (or not yet) have none
    shards_done: int
    n_in: int
    n_out: int
    seconds: float


@dataclass
class Usage:
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class SampleRow:
    task: str
    total: int | None
    target: int | None
    gold_depth: float | None
    strategy: str
    n_documents: int


@dataclass
class RunSummary:
    run_dir: Path
    name: str
    config: dict[str, Any]
    stages: list[StageInfo] = field(default_factory=list)
    seed_tasks: Counter[str] = field(default_factory=Counter)
    synth_tasks: Counter[str] = field(default_factory=Counter)
    context_words: list[int] = field(default_factory=list)
    reliance: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # source -> scores
    context_words_by_task: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    finish_reasons: Counter[str] = field(default_factory=Counter)
    usage: dict[str, Usage] = field(default_factory=lambda: defaultdict(Usage))
    verdicts: Counter[tuple[str, str]] = field(default_factory=Counter)
    attempt_reasons: Counter[str] = field(default_factory=Counter)
    rejections: Counter[tuple[str, str]] = field(default_factory=Counter)
    samples: list[SampleRow] = field(default_factory=list)
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_words: int | None = None
    counted: set[str] = field(default_factory=set)  # records whose generation is counted (each once)
    example: dict[str, Any] | None = None  # the first assembled sample, shown in the card
    fake_backend: bool = False  # some record came from the `fake` backend (not real data)

    def stage(self, name: str) -> StageInfo | None:
        return next((s for s in self.stages if s.name == name), None)


def _find_key(tree: Any, keys: tuple[str, ...]) -> Any:
    """The first value under any of `keys`, searched depth-first through nested mappings."""
    if isinstance(tree, dict):
        for key in keys:
            if key in tree and not isinstance(tree[key], dict):
                return tree[key]
        for value in tree.values():
            found = _find_key(value, keys)
            if found is not None:
                return found
    return None


def verdict_outcome(value: Any) -> str | None:
    """Map one verification verdict to a label: pass, fail, a verdict string, or None (a score)."""
    if isinstance(value, bool):
        return "pass" if value else "fail"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in PASS_KEYS:
            if isinstance(value.get(key), bool):
                return "pass" if value[key] else "fail"
        for key in ("verdict", "label", "status"):
            if isinstance(value.get(key), str):
                return value[key]
    return None


def _stage_infos(run_dir: Path) -> list[StageInfo]:
    state = run_dir / "_state"
    names = [n for n in STAGE_ORDER if (state / n).is_dir() or (run_dir / stage_folder(n)).is_dir()]
    extra = sorted(p.name for p in state.iterdir() if p.is_dir() and p.name not in STAGE_ORDER) if state.is_dir() else []
    infos = []
    for name in names + extra:
        markers = Markers(state, name)
        stats = markers.shard_stats()
        infos.append(StageInfo(name, markers.stage_done(), markers.dir.is_dir(), len(stats), sum(s.get("n_in", 0) for s in stats),
                               sum(s.get("n_out", 0) for s in stats),
                               round(sum(s.get("seconds", 0.0) for s in stats), 1)))
    return infos


def _record_id(record: dict[str, Any]) -> str | None:
    rid = record.get("id") or (record.get("seed") or {}).get("id")
    return str(rid) if rid is not None else None


def _add_generation(summary: RunSummary, record: dict[str, Any], reason: str | None = None) -> None:
    """Count generator usage, per-attempt failure reasons and final verdicts of a Synthesized dict (or
    of the record of a synthesis rejection, whose last attempt holds the verdicts and `reason` the
    failed check). A record seen before (a kept context that assembly later rejected) counts once."""
    rid = _record_id(record)
    if rid is not None:
        if rid in summary.counted:
            return
        summary.counted.add(rid)
    provenance = record.get("provenance") or {}
    summary.fake_backend |= provenance.get("backend") == "fake"
    usage = summary.usage[str(provenance.get("model", "unknown"))]
    attempts = record.get("attempts") or []
    calls = attempts or [{"usage": provenance.get("usage") or {}}]
    for attempt in calls:
        u = attempt.get("usage") or {}
        usage.calls += 1
        usage.prompt_tokens += int(u.get("prompt_tokens", 0))
        usage.completion_tokens += int(u.get("completion_tokens", 0))
        if attempt.get("reason"):
            summary.attempt_reasons[str(attempt["reason"])] += 1
    verdicts = record.get("verdicts")
    if verdicts is None and attempts:
        verdicts = attempts[-1].get("verdicts")
    for check, value in (verdicts or {}).items():
        outcome = verdict_outcome(value)
        if outcome is not None:
            summary.verdicts[(check, outcome)] += 1
    summary.verdicts[("verified", "pass") if reason is None else (f"rejected ({reason})", "fail")] += 1


def _add_synth(summary: RunSummary, record: dict[str, Any]) -> None:
    task = str(record.get("task", "unknown"))
    summary.synth_tasks[task] += 1
    words = len(str(record.get("context", "")).split())
    summary.context_words.append(words)
    summary.context_words_by_task[task].append(words)
    summary.finish_reasons[str((record.get("provenance") or {}).get("finish_reason"))] += 1
    _add_generation(summary, record)


def _add_reliance(summary: RunSummary, run_dir: Path) -> None:
    """Context-reliance scores: of seeds with their human context (filter stage, kept and dropped) and
    of synthetic contexts (verdicts["reliance"], written by ctxsynth.filters.score_synthesized)."""
    filtered = list(read_shards(run_dir / stage_folder("filter"))) + [r.get("record") or {} for r in read_shards(run_dir / stage_folder("filter") / "rejected")]
    for seed in filtered:
        score = ((seed.get("meta") or {}).get("filters") or {}).get("reliance", {}).get("reliance")
        if isinstance(score, int | float):
            summary.reliance["seeds (human context)"].append(float(score))
    for record in read_shards(run_dir / stage_folder("synthesize")):
        score = ((record.get("verdicts") or {}).get("reliance") or {}).get("reliance")
        if isinstance(score, int | float):
            summary.reliance["synthetic contexts"].append(float(score))


def _add_cache_hits(summary: RunSummary, run_dir: Path) -> None:
    """Cache hits are a property of the run, not of a record: they come from the synthesis shard stats."""
    stats = Markers(run_dir / "_state", "synthesize").shard_stats()
    hits = sum(int((s.get("usage") or {}).get("requests_cached", 0)) for s in stats)
    if hits and len(summary.usage) == 1:  # one generator per run
        next(iter(summary.usage.values())).cached_calls = hits


def _rejected(run_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for folder in sorted(run_dir.glob("*/rejected")):
        for record in read_shards(folder):
            yield folder.parent.name, record


def _sample_row(d: dict[str, Any]) -> SampleRow:
    tokens = d.get("tokens") or {}
    return SampleRow(task=str(d.get("task", "unknown")), total=tokens.get("total"), target=tokens.get("target"),
                     gold_depth=d.get("gold_depth"), strategy=str(d.get("distractor_strategy", "unknown")),
                     n_documents=int(d.get("n_documents", 0)))


def collect(run_dir: Path) -> RunSummary:
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    config = (yaml.safe_load(config_path.read_text()) or {}) if config_path.exists() else {}
    summary = RunSummary(run_dir=run_dir, name=run_dir.name, config=config, stages=_stage_infos(run_dir))
    for seed in read_shards(run_dir / stage_folder("seeds")):
        summary.seed_tasks[str(seed.get("task", "unknown"))] += 1
    for record in read_shards(run_dir / stage_folder("synthesize")):
        _add_synth(summary, record)
    for stage, rejected in _rejected(run_dir):
        summary.rejections[(str(rejected.get("stage") or stage), str(rejected.get("reason", "unknown")))] += 1
        if "provenance" in (rejected.get("record") or {}):
            _add_generation(summary, rejected["record"], str(rejected.get("reason", "unknown")))
    _add_reliance(summary, run_dir)
    _add_cache_hits(summary, run_dir)
    for d in read_shards(run_dir / stage_folder("assemble")):
        summary.samples.append(_sample_row(d))
        if summary.example is None:
            summary.example = {k: d.get(k) for k in ("id", "task", "messages", "gold_depth", "n_documents", "tokens")}
    for manifest in sorted((run_dir / stage_folder("export")).glob("*/manifest.json")):
        summary.exports[manifest.parent.name] = json.loads(manifest.read_text())
    words = _find_key(config, ("target_words",))
    summary.target_words = int(words) if isinstance(words, int | float) else None
    log.debug("collected %s: %d seeds, %d synthesized, %d samples", run_dir, sum(summary.seed_tasks.values()),
              len(summary.context_words), len(summary.samples))
    return summary
