"""NIAH train/test needle separation, reproducibility, config validation and the pilot configs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxsynth import config as config_loader
from ctxsynth.io import read_jsonl
from ctxsynth.niah import NEEDLE_FORMATS, NiahConfig, TestSpec, TrainSpec, build_niah, needle_split
from ctxsynth.niah.needles import draw

PILOT = Path(__file__).resolve().parents[2] / "configs" / "pilot"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), fmt=st.sampled_from(NEEDLE_FORMATS))
def test_drawn_needles_belong_to_their_split(seed: int, fmt: str) -> None:
    rng = random.Random(seed)
    train = {draw(rng, fmt, "train", set()) for _ in range(20)}
    test = {draw(rng, fmt, "test", set()) for _ in range(20)}
    assert all(needle_split(t) == "train" for t in train)
    assert all(needle_split(t) == "test" for t in test)
    assert not train & test


def test_draw_never_repeats_a_taken_string_or_one_found_in_the_source() -> None:
    rng, taken = random.Random(0), set()
    drawn = [draw(rng, "numbers", "train", taken) for _ in range(200)]
    assert len(set(drawn)) == 200 and taken == set(drawn)
    source = " ".join(drawn[:100])
    rng = random.Random(0)
    again = [draw(rng, "numbers", "train", set(), source) for _ in range(100)]
    assert not set(again) & set(drawn[:100])


def test_train_and_test_builds_share_no_key_and_no_value(tmp_path: Path) -> None:
    """Same seed for both splits, every format: the needle spaces still never meet."""
    for fmt in NEEDLE_FORMATS:
        config = NiahConfig(composition="needle_only", key_format=fmt, value_format=fmt, num_keys=6,
                            train=TrainSpec(samples_per_variant=40),
                            test=TestSpec(lengths=[512], depths=[0.0, 0.5, 1.0], samples_per_cell=10))
        out = tmp_path / fmt
        build_niah(config, out)
        train = [s["meta"] for s in read_jsonl(out / "train" / "shard-00000.jsonl.gz")]
        test = [i["meta"] for p in (out / "test").glob("*.jsonl") for i in read_jsonl(p)]
        train_strings = {x for m in train for x in m["needle_keys"] + m["needle_values"]}
        test_strings = {x for m in test for x in m["needle_keys"] + m["needle_values"]}
        assert len(train_strings) > 500 and len(test_strings) > 200
        assert not train_strings & test_strings


def _small(seed: int = 0, variants: list[str] | None = None) -> NiahConfig:
    return NiahConfig(seed=seed, variants=variants or ["single", "multi_key", "multi_query", "multi_value"],
                      train=TrainSpec(samples_per_variant=2, lengths=[300, 700]),
                      test=TestSpec(lengths=[400], depths=[0.0, 0.5], samples_per_cell=1))


def _bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.jsonl*"))}


def test_same_seed_gives_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    build_niah(_small(), tmp_path / "a")
    build_niah(_small(), tmp_path / "b")
    build_niah(_small(seed=1), tmp_path / "c")
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert _bytes(tmp_path / "a")["test/single.jsonl"] != _bytes(tmp_path / "c")["test/single.jsonl"]


def test_a_sample_does_not_depend_on_which_other_variants_are_built(tmp_path: Path) -> None:
    build_niah(_small(), tmp_path / "all")
    build_niah(_small(variants=["multi_value"]), tmp_path / "one")
    every = {s["id"]: s for s in read_jsonl(tmp_path / "all" / "train" / "shard-00000.jsonl.gz")}
    alone = list(read_jsonl(tmp_path / "one" / "train" / "shard-00000.jsonl.gz"))
    assert alone and all(every[s["id"]] == s for s in alone)
    assert _bytes(tmp_path / "all")["test/multi_value.jsonl"] == _bytes(tmp_path / "one")["test/multi_value.jsonl"]


def test_export_formats_are_written_beside_the_samples(tmp_path: Path) -> None:
    config = _small()
    config.export_formats = ["trl_messages"]
    summary = build_niah(config, tmp_path)
    assert summary["train"]["export"] == ["trl_messages"]
    assert (tmp_path / "export" / "trl_messages").is_dir()


@pytest.mark.parametrize("bad", [
    {"variants": ["single", "multi_kee"]},
    {"composition": "essays"},
    {"value_format": "emoji"},
    {"num_values": 0},
    {"train": {"lengths": [10]}},
    {"test": {"depths": [1.5]}},
    {"trian": {}},
])
def test_invalid_configs_are_rejected(bad: dict) -> None:
    with pytest.raises(config_loader.ConfigError):
        config_loader.from_dict(NiahConfig, bad)


def _pilot(name: str) -> NiahConfig:
    return config_loader.load(NiahConfig, PILOT / name)


def test_pilot_sft_configs_match_the_paper() -> None:
    """SFT1 builds no NIAH data; SFT2-4 build 200 x 4 variants differing only in the context."""
    sft1 = _pilot("sft1_general.yaml")
    assert sft1.train is not None and sft1.train.samples_per_variant == 0 and sft1.test is None
    sft = {n: _pilot(f"{n}.yaml") for n in ("sft2_needle_only", "sft3_short_haystack", "sft4_long_haystack")}
    for config in sft.values():
        assert config.train is not None and config.train.samples_per_variant == 200
        assert sorted(config.variants) == ["multi_key", "multi_query", "multi_value", "single"]
        assert config.test is None
    assert sft["sft2_needle_only"].composition == "needle_only"
    assert sft["sft3_short_haystack"].composition == "essay" == sft["sft4_long_haystack"].composition
    assert sft["sft3_short_haystack"].train.lengths == [1024]
    assert sft["sft4_long_haystack"].train.lengths == [65536]


def test_pilot_test_grids() -> None:
    full = _pilot("test_grid.yaml")
    assert full.train is None and full.test is not None
    assert len(full.test.lengths) * len(full.test.depths) * full.test.samples_per_cell == 500
    assert max(full.test.lengths) == 65536
    small = _pilot("test_grid_small.yaml")
    assert small.test is not None and max(small.test.lengths) <= 8192


def test_pilot_configs_build_with_small_overrides(tmp_path: Path) -> None:
    """SFT1 writes an empty training shard; SFT2 and SFT3 build as configured (counts cut down)."""
    summary = build_niah(_pilot("sft1_general.yaml"), tmp_path / "sft1")
    assert summary["train"]["samples"] == 0
    assert list(read_jsonl(tmp_path / "sft1" / "train" / "shard-00000.jsonl.gz")) == []
    for name in ("sft2_needle_only", "sft3_short_haystack"):
        config = config_loader.load(NiahConfig, PILOT / f"{name}.yaml", ["train.samples_per_variant=2"])
        summary = build_niah(config, tmp_path / name)
        assert summary["train"]["samples"] == 8
    assert 1020 <= summary["train"]["tokens"]["min"] <= summary["train"]["tokens"]["max"] <= 1024
