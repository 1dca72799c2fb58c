"""Built-in offline seeds (SQuAD v2 dev, HotpotQA dev-distractor) and text corpora from real asset files."""

from __future__ import annotations

import json

import pytest

from ctxsynth import assets
from ctxsynth.eval.partition import hotpotqa_is_heldout, squad_is_heldout
from ctxsynth.records import Seed
from ctxsynth.registry import RegistryError
from ctxsynth.seeds import SEED_SOURCES, SeedsConfig, paul_graham_text, read_seeds, wiki_extracts
from ctxsynth.seeds.builtin import _load_json


@pytest.fixture(scope="module")
def squad() -> list[Seed]:
    seeds = list(read_seeds(SeedsConfig(source="squad")))
    assert all(isinstance(s, Seed) for s in seeds)
    return seeds  # type: ignore[return-value]


@pytest.fixture(scope="module")
def hotpotqa() -> list[Seed]:
    return list(read_seeds(SeedsConfig(source="hotpotqa")))  # type: ignore[arg-type]


def test_squad_gives_every_answerable_seed_partition_question_and_no_impossible_one(squad: list[Seed]) -> None:
    raw = json.loads(assets.ruler_json("squad.json").read_text())
    questions = [(a["title"], qa) for a in raw["data"] for p in a["paragraphs"] for qa in p["qas"]]
    impossible = {qa["id"] for _, qa in questions if qa["is_impossible"]}
    held_out = {qa["id"] for title, qa in questions if squad_is_heldout(title)}
    assert len(squad) == 1997 == len({qa["id"] for _, qa in questions} - impossible - held_out)
    assert not (impossible | held_out) & {s.id for s in squad}
    assert len({s.id for s in squad}) == len(squad)


def test_squad_first_seed_is_the_first_seed_partition_question_with_its_paragraph(squad: list[Seed]) -> None:
    first = squad[0]  # "Normans", the file's first article, is held out for evaluation
    assert first.instruction.startswith("What branch of theoretical computer science deals with")
    assert first.answer == ["Computational complexity theory"]  # identical annotations collapse to one
    assert first.context is not None and first.context.startswith("Computational complexity theory is a branch")
    assert first.task == "single_doc_qa"
    assert first.meta["dataset"] == "squad_v2" and first.meta["title"] == "Computational_complexity_theory"


def test_squad_answers_are_unique_non_empty_spans_of_the_context(squad: list[Seed]) -> None:
    for seed in squad:
        assert isinstance(seed.answer, list) and seed.answer
        assert len(set(seed.answer)) == len(seed.answer) and all(a and a == a.strip() for a in seed.answer)
        assert seed.context is not None
        for answer, start in zip(seed.answer, seed.meta["answer_starts"], strict=True):
            assert answer in seed.context
            assert seed.context[start:].lstrip().startswith(answer)
    assert max(len(s.answer) for s in squad) > 1


def test_hotpotqa_counts_content_and_supporting_context(hotpotqa: list[Seed]) -> None:
    assert len(hotpotqa) == 3721 == len({s.id for s in hotpotqa})  # the seed half of 7,405
    assert not any(hotpotqa_is_heldout(s.id) for s in hotpotqa)
    first = hotpotqa[0]
    assert first.instruction == "Were Scott Derrickson and Ed Wood of the same nationality?"
    assert first.answer == "yes" and first.task == "multi_doc_qa"
    assert first.context.startswith("Scott Derrickson\nScott Derrickson (born July 16, 1966)")
    assert "\n\nEd Wood\nEdward Davis Wood Jr." in first.context
    assert {s.meta["type"] for s in hotpotqa} == {"bridge", "comparison"}
    assert {s.meta["level"] for s in hotpotqa} == {"hard"}


def test_hotpotqa_meta_can_rebuild_the_distractor_setting(hotpotqa: list[Seed]) -> None:
    first = hotpotqa[0]
    assert len(first.meta["paragraphs"]) == 10
    assert first.meta["supporting_facts"] == [["Scott Derrickson", 0], ["Ed Wood", 0]]
    for seed in hotpotqa[:500]:
        titles = [p["title"] for p in seed.meta["paragraphs"]]
        for title, _sentence in seed.meta["supporting_facts"]:
            assert title in titles and f"{title}\n" in seed.context
        assert isinstance(seed.answer, str) and seed.answer


def test_builtin_task_override_limit_and_sample() -> None:
    seeds = list(read_seeds(SeedsConfig(source="squad", task="extractive_qa", limit=3)))
    assert [s.task for s in seeds] == ["extractive_qa"] * 3
    sample = [s.id for s in read_seeds(SeedsConfig(source="hotpotqa", limit=4, sample_seed=7))]
    assert sample == [s.id for s in read_seeds(SeedsConfig(source="hotpotqa", limit=4, sample_seed=7))]
    assert len(sample) == 4


def test_files_are_parsed_once_and_edits_to_a_seed_do_not_leak(squad: list[Seed]) -> None:
    (first,) = read_seeds(SeedsConfig(source="squad", limit=1))
    misses = _load_json.cache_info().misses
    first.meta["title"] = "edited"
    first.answer.append("edited")  # type: ignore[union-attr]
    (again,) = read_seeds(SeedsConfig(source="squad", limit=1))
    assert _load_json.cache_info().misses == misses
    assert again.meta["title"] == "Computational_complexity_theory"
    assert again.answer == ["Computational complexity theory"]


def test_unknown_source_name_suggests_the_closest() -> None:
    with pytest.raises(RegistryError, match=r"Did you mean 'hotpotqa'\?"):
        SEED_SOURCES.get("hotpot_qa")
    assert SEED_SOURCES.names() == ["hf_disk", "hotpotqa", "hub", "jsonl", "parquet", "squad"]


def test_paul_graham_text_is_the_essay_collection() -> None:
    text = paul_graham_text()
    assert len(text) > 3_000_000
    assert text.startswith("April 2012A palliative care nurse called Bronnie Ware")


def test_wiki_extracts_have_title_and_text() -> None:
    extracts = wiki_extracts()
    assert len(extracts) == 10033
    assert all(e["title"] and e["text"].strip() for e in extracts)
    by_title = {e["title"]: e for e in extracts}
    assert by_title["2001: A Space Odyssey"]["text"].startswith("2001: A Space Odyssey is a 1968 epic")
