"""`assemble.random_draw: sample` (the O(k) candidate order of the random strategies): a uniformly
random order drawn lazily, deterministic per sample, and independent of the shard count; the default
`shuffle` keeps its bytes (and the config hash it had before the key existed)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from ctxsynth import config as cfg
from ctxsynth.assemble.config import AssembleConfig
from ctxsynth.assemble.distractors import distinct_draws
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.run import Run, run_all


def test_draws_are_the_generator_s_values_with_repeats_skipped_then_a_shuffle() -> None:
    rng = random.Random(10)
    raw = [rng.randrange(10) for _ in range(7)]  # what the walk asks the generator for, in order
    assert raw == [9, 0, 6, 7, 9, 0, 3]  # the repeated 9 and 0 are drawn again
    walk = list(distinct_draws(10, random.Random(10)))
    assert walk[:5] == [9, 0, 6, 7, 3]  # five distinct draws: half of 10, then the rest shuffled
    assert sorted(walk) == list(range(10))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 50, 1001])
def test_every_position_comes_once(n: int) -> None:
    walk = list(distinct_draws(n, random.Random(n)))
    assert sorted(walk) == list(range(n))
    assert walk == list(distinct_draws(n, random.Random(n)))


def test_the_first_draw_is_uniform() -> None:
    counts = [0] * 8
    for seed in range(8000):
        counts[next(distinct_draws(8, random.Random(seed)))] += 1
    assert all(850 <= c <= 1150 for c in counts), counts  # 1000 each; 1150 is ~5 standard deviations


def test_bad_value_is_refused() -> None:
    with pytest.raises(ValueError, match="random_draw"):
        AssembleConfig(random_draw="fast")  # type: ignore[arg-type]


def _run(root: Path, shards: int, draw: str | None, name: str) -> Run:
    seeds = root / "seeds.jsonl"
    if not seeds.exists():
        seeds.write_text("".join(json.dumps({"id": f"s{i:03d}", "task": ("qa", "sum")[i % 2],
                                             "instruction": f"Who founded the settlement number {i}?",
                                             "answer": f"Founder {i}"}) + "\n" for i in range(40)))
    assemble = {"target_tokens": 1024, "distractors": "any_task", "leak_check": False}
    if draw is not None:
        assemble["random_draw"] = draw
    data = {"name": name, "out_dir": str(root / "runs"), "seed": 3, "shards": shards, "executor": "serial",
            "stages": ["seeds", "synthesize", "assemble"], "seeds": {"source": "jsonl", "path": str(seeds)},
            "llm": {"backend": "fake", "model": "fake", "max_tokens": 400, "options": {"words": 120}},
            "synth": {"target_words": 120, "max_attempts": 1}, "assemble": assemble}
    run = Run(cfg.from_dict(RunConfig, data), base_dir=root)
    run.prepare()
    run_all(run)
    return run


def _samples(run: Run) -> list[dict]:
    rows = []
    for path in sorted((run.dir / "assemble").glob("shard-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    return rows


def test_sample_draw_gives_the_same_bytes_for_one_and_four_shards(tmp_path: Path) -> None:
    one = _samples(_run(tmp_path, 1, "sample", "one"))
    four = _samples(_run(tmp_path, 4, "sample", "four"))
    assert len(one) >= 10
    assert json.dumps(one) == json.dumps(four)
    shuffled = _samples(_run(tmp_path, 1, "shuffle", "shuffle"))
    assert [s["id"] for s in shuffled] == [s["id"] for s in one]
    assert [s["distractor_ids"] for s in shuffled] != [s["distractor_ids"] for s in one]  # the option is in effect


def test_the_default_hashes_as_before_the_key_existed(tmp_path: Path) -> None:
    default = Run(cfg.from_dict(RunConfig, {"name": "a", "out_dir": str(tmp_path)}), base_dir=tmp_path)
    sample = Run(cfg.from_dict(RunConfig, {"name": "a", "out_dir": str(tmp_path), "assemble": {"random_draw": "sample"}}),
                 base_dir=tmp_path)
    view = default.saved_view()
    del view["assemble"]["random_draw"]
    import hashlib

    for key in ("out_dir", "name", "shards", "max_consecutive_failures", "executor", "workers", "shard_retries", "ray"):
        view.pop(key, None)
    view["llm"] = {k: v for k, v in view["llm"].items() if k != "max_cost_usd"}
    before = hashlib.sha256(json.dumps(view, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
    assert default.config_hash() == before
    assert sample.config_hash() != before
