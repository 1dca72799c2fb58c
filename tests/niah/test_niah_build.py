"""NIAH invariants on real builds with the SmolLM2 tokenizer: needles once, budgets, depths, answers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ctxsynth.eval.metrics import all_substring
from ctxsynth.io import read_jsonl
from ctxsynth.niah import NiahConfig, TestSpec, TrainSpec, build_niah
from ctxsynth.tokenize import load_tokenizer

LENGTHS = [256, 1024, 2048]


def _config(**overrides: Any) -> NiahConfig:
    base: dict[str, Any] = {
        "composition": "essay",
        "train": TrainSpec(samples_per_variant=3, lengths=LENGTHS),
        "test": TestSpec(lengths=[512, 1536], depths=[0.0, 0.3, 0.7, 1.0], samples_per_cell=1),
    }
    base.update(overrides)
    return NiahConfig(**base)


def _load(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    samples = list(read_jsonl(out / "train" / "shard-00000.jsonl.gz"))
    items = [i for p in sorted((out / "test").glob("*.jsonl")) for i in read_jsonl(p)]
    return samples, items


@pytest.fixture(scope="module")
def essay_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("niah_essay")
    build_niah(_config(), out)
    return _load(out)


def _records(build: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """(user text, meta) of every training sample and test item."""
    samples, items = build
    return [(s["messages"][0]["content"], s["meta"]) for s in samples] + [(i["prompt"], i["meta"]) for i in items]


def test_build_writes_every_variant_and_grid_cell(essay_build: tuple[list, list]) -> None:
    samples, items = essay_build
    assert len(samples) == 4 * 3
    assert {s["template"] for s in samples} == {"niah_single", "niah_multi_key", "niah_multi_query", "niah_multi_value"}
    assert len(items) == 4 * 2 * 4 * 1
    assert all(i["metric"] == "all_substring" for i in items)
    assert {(i["meta"]["length"], i["meta"]["depth"]) for i in items if i["meta"]["variant"] == "single"} == {
        (n, d) for n in (512, 1536) for d in (0.0, 0.3, 0.7, 1.0)}


def test_each_needle_and_value_appears_exactly_once(essay_build: tuple[list, list]) -> None:
    for user, meta in _records(essay_build):
        for (a, b), value in zip(meta["needle_char_spans"], meta["needle_values"], strict=True):
            needle = user[a:b]
            assert needle.endswith(f"is: {value}.")
            assert user.count(needle) == 1
            assert user.count(value) == 1


def test_length_is_within_budget_and_close_to_it(essay_build: tuple[list, list]) -> None:
    """total <= target, at most a few tokens short, and the recorded count is the real count."""
    tok = load_tokenizer("smollm2")
    samples, items = essay_build
    for s in samples:
        t = s["tokens"]
        assert t["target"] in LENGTHS
        assert t["target"] - 4 <= t["total"] <= t["target"]
        assert len(tok.encode(tok.render_chat(s["messages"]))) == t["total"]
        assert t["prompt"] + t["answer"] == t["total"]
    for i in items:  # test lengths leave max_new_tokens of generation room inside the window
        window = i["meta"]["length"] - i["max_new_tokens"]
        assert window - 4 <= i["meta"]["tokens"]["total"] <= window
        assert i["meta"]["tokens"]["prompt"] + i["max_new_tokens"] <= i["meta"]["length"]


def test_depth_is_recorded_and_matches_needle_position(essay_build: tuple[list, list]) -> None:
    """A needle lands within 2% of the haystack (40 chars on short ones) of its depth, or at the
    nearest space when no sentence ends that close; its char span is where the record says."""
    for _, meta in _records(essay_build):
        chars = meta["haystack_chars"]
        for asked, landed in zip(meta["needle_depths"], meta["needle_haystack_depths"], strict=True):
            assert abs(asked - landed) * chars <= max(0.02 * chars, 40) + 30
            if chars > 4000:
                assert abs(asked - landed) <= 0.03
    samples, items = essay_build
    for i in items:
        gold = i["meta"]["needle_targets"].index(True)
        assert i["meta"]["needle_depths"][gold] == i["meta"]["depth"]
    # gold spans: chars of the user turn, tokens of the rendered chat, depth from the token span
    tok = load_tokenizer("smollm2")
    for s in samples:
        a, b = s["gold_char_span"]
        gold_value = s["meta"]["needle_values"][s["meta"]["needle_targets"].index(True)]
        assert s["messages"][0]["content"][a:b].endswith(f"{gold_value}.")
        ids = tok.encode(tok.render_chat(s["messages"]))
        start, end = s["gold_token_span"]
        assert gold_value in tok.decode(ids[start:end])
        assert s["gold_depth"] == pytest.approx(start / s["tokens"]["prompt"], abs=1e-5)


def test_depth_zero_and_one_put_the_needle_at_the_haystack_edges(essay_build: tuple[list, list]) -> None:
    _, items = essay_build
    for i in items:
        head_end = i["prompt"].index("\n\n") + 2
        question_start = i["prompt"].rindex("\n\n")
        a, b = i["meta"]["needle_char_spans"][i["meta"]["needle_targets"].index(True)]
        if i["meta"]["depth"] == 0.0:
            assert a == head_end
        if i["meta"]["depth"] == 1.0:
            assert b == question_start


def test_multi_value_answer_lists_every_value(essay_build: tuple[list, list]) -> None:
    samples, items = essay_build
    multi = [s for s in samples if s["template"] == "niah_multi_value"]
    for s in multi:
        values = s["meta"]["needle_values"]
        assert len(set(s["meta"]["needle_keys"])) == 1 and len(values) == 4
        assert sorted(s["answer"]) == sorted(values)
        assert all_substring(s["messages"][1]["content"], values) == 1.0
    for i in (i for i in items if i["meta"]["variant"] == "multi_value"):
        assert sorted(i["answers"]) == sorted(i["meta"]["needle_values"])


def test_multi_key_asks_one_key_among_distractor_keys(essay_build: tuple[list, list]) -> None:
    samples, _ = essay_build
    for s in (s for s in samples if s["template"] == "niah_multi_key"):
        keys, targets = s["meta"]["needle_keys"], s["meta"]["needle_targets"]
        assert len(set(keys)) == 4 and targets.count(True) == 1
        asked = keys[targets.index(True)]
        question = s["meta"]["instruction"]
        assert asked in question and not any(k in question for k, t in zip(keys, targets, strict=True) if not t)
        assert len(s["distractor_ids"]) == 3


def test_multi_query_answer_names_every_asked_key(essay_build: tuple[list, list]) -> None:
    samples, _ = essay_build
    for s in (s for s in samples if s["template"] == "niah_multi_query"):
        answer = s["messages"][1]["content"]
        for key, value in zip(s["meta"]["needle_keys"], s["meta"]["needle_values"], strict=True):
            assert f"{key}: {value}" in answer and key in s["meta"]["instruction"]


def test_needle_only_context_is_the_needles_and_nothing_else(tmp_path: Path) -> None:
    build_niah(_config(composition="needle_only", distractor_needles=2), tmp_path)
    samples, items = _load(tmp_path)
    assert {i["meta"]["length"] for i in items} == {0}
    for user, meta in _records((samples, items)):
        needles = sorted((user[a:b] for a, b in meta["needle_char_spans"]), key=user.index)
        preamble, _, rest = user.partition("\n\n")
        context, _, question = rest.rpartition("\n\n")
        assert context == "\n".join(needles)
        assert preamble.startswith("The text below hides") and question.startswith("What ")
    assert all(s["tokens"]["target"] is None and len(s["distractor_ids"]) >= 2 for s in samples)


def test_noise_haystack_is_repeated_noise_sentences(tmp_path: Path) -> None:
    build_niah(_config(composition="noise", test=None), tmp_path)
    samples, _ = _load(tmp_path)
    longest = 0
    for s in samples:
        user = s["messages"][0]["content"]
        for a, b in sorted(s["meta"]["needle_char_spans"], reverse=True):
            user = user[:a] + user[b:]
        sentences = re.split(r"(?<=\.)\s+", user.split("\n\n")[1].strip())
        noise = {"The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again."}
        assert set(sentences[:-1]) <= noise
        assert any(n.startswith(sentences[-1]) for n in noise)  # the budget may cut the last one short
        assert s["tokens"]["target"] - 4 <= s["tokens"]["total"] <= s["tokens"]["target"]
        longest = max(longest, len(sentences))
    assert longest > 50


def test_wiki_haystack_fits_with_uuid_values_and_word_keys(tmp_path: Path) -> None:
    config = _config(composition="wiki", value_format="uuids", key_format="words",
                     train=TrainSpec(samples_per_variant=1, lengths=[1024]), test=None)
    build_niah(config, tmp_path)
    samples, _ = _load(tmp_path)
    uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    for s in samples:
        assert all(uuid.match(v) for v in s["meta"]["needle_values"])
        assert all(re.match(r"^[a-z]+-[a-z]+$", k) for k in s["meta"]["needle_keys"])
        assert 1020 <= s["tokens"]["total"] <= 1024


def test_target_too_small_for_the_needles_is_an_error(tmp_path: Path) -> None:
    config = _config(variants=["multi_query"], num_queries=8, train=TrainSpec(samples_per_variant=1, lengths=[64]),
                     test=None)
    with pytest.raises(ValueError, match="too small"):
        build_niah(config, tmp_path)
