"""Rule-based filters (well-formedness, dedup, decontamination) and the Verdict contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctxsynth.filters import FiltersConfig, Verdict, apply_filters
from ctxsynth.filters.config import DecontamConfig, WellFormedConfig
from ctxsynth.filters.decontam import DecontamFilter
from ctxsynth.filters.dedup import find_duplicates
from ctxsynth.filters.wellformed import WellFormedFilter
from ctxsynth.records import Seed
from ctxsynth.seeds import SeedsConfig, paul_graham_text, read_seeds


def _seed(i: str, instruction: str, answer: str | list[str], context: str | None = None) -> Seed:
    return Seed(id=i, task="qa", instruction=instruction, answer=answer, context=context)


@pytest.fixture(scope="module")
def real_seeds() -> list[Seed]:
    return [s for src in ("squad", "hotpotqa")
            for s in read_seeds(SeedsConfig(source=src, limit=60, sample_seed=3)) if isinstance(s, Seed)]


def test_verdict_has_a_reason_exactly_when_it_drops() -> None:
    with pytest.raises(ValueError):
        Verdict(keep=True, reason="x")
    with pytest.raises(ValueError):
        Verdict(keep=False)
    assert Verdict.drop("r", "d", a=1).scores == {"a": 1}


@pytest.mark.parametrize(("instruction", "answer", "reason"), [
    ("Who wrote the report on the dam?", "unanswerable", "unanswerable_answer"),
    ("Who wrote the report on the dam?", ["", " "], "empty_answer"),
    ("Why?", "because", "instruction_too_short"),
    ("   ", "Paris", "instruction_too_short"),
    ("Was the capital Paris during the war?", "Paris", "answer_in_instruction"),
])
def test_wellformed_drops_ill_posed_seeds_with_their_reason(instruction: str, answer: str, reason: str) -> None:
    verdict = WellFormedFilter(WellFormedConfig()).check_one(_seed("a", instruction, answer))
    assert not verdict.keep and verdict.reason == reason


def test_wellformed_keeps_choice_questions_yes_no_and_real_seeds(real_seeds: list[Seed]) -> None:
    f = WellFormedFilter(WellFormedConfig())
    assert f.check_one(_seed("c", "Which is older, the Louvre or the Prado?", "the Louvre")).keep
    assert f.check_one(_seed("y", "Is the Prado in Madrid?", "yes")).keep
    assert f.check_one(_seed("w", "Which of Jonny Craig and Pete Doherty has been in more bands?", "Jonny Craig")).keep
    for seed, verdict in zip(real_seeds, f.check(real_seeds), strict=True):  # built-ins hold answerable pairs
        assert verdict.keep or verdict.reason == "answer_in_instruction", (seed.instruction, verdict)


@pytest.mark.parametrize(("answer", "words"), [
    # words are counted after normalisation: case, punctuation and articles go, a hyphen joins its halves
    ("the Roman Empire", 2),  # "roman empire"
    ("$100,000 in prize money", 4),  # "100000 in prize money"
    ("Catawba, Muskogee-speaking Creek and Choctaw", 5),  # "catawba muskogeespeaking creek and choctaw"
    (["Four", "four fraternities and sororities"], 4),  # the longest reference counts
])
def test_wellformed_max_answer_words_keeps_at_the_limit_and_drops_above_it(answer: str | list[str], words: int) -> None:
    seed = _seed("s", "Which group did the treaty of the region name?", answer)
    assert WellFormedFilter(WellFormedConfig(max_answer_words=words)).check_one(seed).keep
    verdict = WellFormedFilter(WellFormedConfig(max_answer_words=words - 1)).check_one(seed)
    assert not verdict.keep and verdict.reason == "answer_too_long" and verdict.scores == {"answer_words": words}
    assert WellFormedFilter(WellFormedConfig()).check_one(seed).keep  # no limit by default
    assert WellFormedFilter(WellFormedConfig(max_answer_words=1)).check_one(_seed("m", seed.instruction, "$100,000")).keep


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_wellformed_max_answer_words_refuses_bad_values(bad: object) -> None:
    with pytest.raises(ValueError, match="filters.wellformed.max_answer_words must be a whole number >= 1"):
        FiltersConfig(wellformed=WellFormedConfig(max_answer_words=bad))  # type: ignore[arg-type]


def test_dedup_finds_planted_duplicates_and_nothing_else_in_real_seeds(real_seeds: list[Seed]) -> None:
    texts = [f"{s.instruction} || {' | '.join(s.answers)}" for s in real_seeds]
    ids = [s.id for s in real_seeds]
    clean = find_duplicates(ids, texts, threshold=0.85, num_perm=128, shingle_chars=5)
    assert all(v.keep for v in clean)
    planted_exact = texts[4].upper() + "!"  # case and punctuation only
    near = max(range(len(texts)), key=lambda i: len(texts[i]))  # the longest: a typo barely changes it
    cut = texts[near].index(" ", 20) - 2  # a letter inside a word
    planted_near = texts[near][:cut] + "#" + texts[near][cut + 1 :]
    verdicts = find_duplicates([*ids, "dup1", "dup2"], [*texts, planted_exact, planted_near],
                               threshold=0.8, num_perm=128, shingle_chars=5)
    dropped = {ids_: v for ids_, v in zip([*ids, "dup1", "dup2"], verdicts, strict=True) if not v.keep}
    assert set(dropped) == {"dup1", "dup2"}
    assert dropped["dup1"].reason == "duplicate_exact" and dropped["dup1"].scores["duplicate_of"] == ids[4]
    assert dropped["dup2"].reason == "duplicate_near" and dropped["dup2"].scores["duplicate_of"] == ids[near]


def _eval_files(tmp_path: Path, planted: Seed, planted_ctx: Seed) -> list[str]:
    essay = paul_graham_text().split()
    longbench = tmp_path / "longbench.jsonl"
    rows = [{"_id": f"lb{i}", "input": f"What does the author say in part {i}?", "answers": ["x"],
             "context": " ".join(essay[i * 400 : (i + 1) * 400]), "dataset": "narrativeqa"} for i in range(20)]
    rows.append({"_id": "lb-planted", "input": planted.instruction, "answers": planted.answers,
                 "context": "An unrelated paragraph about nothing in particular.", "dataset": "hotpotqa"})
    longbench.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    items = tmp_path / "items.jsonl"
    item = {"id": "item-ctx", "task": "qa", "prompt": f"Read this.\n\n{planted_ctx.context}\n\nQuestion: ?",
            "answers": ["y"], "metric": "qa_f1"}
    items.write_text(json.dumps(item) + "\n", encoding="utf-8")
    return [str(longbench), str(items)]


def test_decontam_flags_planted_overlap_with_eval_ids_and_nothing_else(tmp_path: Path, real_seeds: list[Seed]) -> None:
    planted_q, planted_ctx = real_seeds[0], real_seeds[1]
    files = _eval_files(tmp_path, planted_q, planted_ctx)
    f = DecontamFilter(DecontamConfig(eval_files=files))
    verdicts = f.check_texts([{"instruction": s.instruction, "context": s.context} for s in real_seeds])
    dropped = {s.id: v for s, v in zip(real_seeds, verdicts, strict=True) if not v.keep}
    assert set(dropped) == {planted_q.id, planted_ctx.id}
    assert dropped[planted_q.id].scores["eval_id"] == "lb-planted"
    assert dropped[planted_ctx.id].scores["eval_id"] == "item-ctx"
    assert all(v.reason == "contaminated" for v in dropped.values())


def test_apply_filters_writes_every_drop_as_rejected_with_stats(real_seeds: list[Seed]) -> None:
    config = FiltersConfig()
    config.closed_book.enabled = config.reliance.enabled = False
    seeds = [*real_seeds[:10], _seed("bad", "Why?", "x"), _seed("twin", real_seeds[2].instruction, real_seeds[2].answer)]
    kept, rejected, stats = apply_filters(seeds, config, run_seed=0)
    assert [s.id for s in kept] == [s.id for s in real_seeds[:10]]
    assert {(r.id, r.reason) for r in rejected} == {("bad", "instruction_too_short"), ("twin", "duplicate_exact")}
    assert stats["in"] == 12 and stats["kept"] == 10
    assert stats["dropped_instruction_too_short"] == 1 and stats["dropped_duplicate_exact"] == 1
    assert "wellformed" in kept[0].meta["filters"]


def test_decontam_reads_builtin_eval_sets_frozen_by_eval_write_items(tmp_path: Path, real_seeds: list[Seed]) -> None:
    """The way to decontaminate against ctxsynth's own evaluation sets: `ctxsynth eval CONFIG
    --write-items FILE.jsonl.gz`, then name that file. A seed built on a held-out HotpotQA item's
    paragraphs is dropped with that item's id; the real seeds (the other half of the split) are kept."""
    import yaml
    from typer.testing import CliRunner

    from ctxsynth.cli import app
    from ctxsynth.eval.builtin import hotpotqa_items

    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"name": "x", "builtin": {"hotpotqa": 5}}))
    frozen = tmp_path / "heldout.jsonl.gz"
    assert CliRunner().invoke(app, ["eval", str(config), "--write-items", str(frozen)]).exit_code == 0
    item = hotpotqa_items(5, seed=0)[2]
    leaked = _seed("leak", "Which paragraph is this?", "x")
    leaked.context = item.prompt.split("\n\n", 2)[1][:2000]
    seeds = [*real_seeds[:20], leaked]
    verdicts = DecontamFilter(DecontamConfig(eval_files=[str(frozen)])).check_texts(
        [{"instruction": s.instruction, "context": s.context} for s in seeds])
    dropped = {s.id: v.scores["eval_id"] for s, v in zip(seeds, verdicts, strict=True) if not v.keep}
    assert dropped == {"leak": item.id}


def test_filters_are_a_registry_with_one_interface() -> None:
    import dataclasses

    from ctxsynth.filters.config import FiltersConfig
    from ctxsynth.filters.registry import FILTERS, FilterContext, build_filters
    from ctxsynth.records import Seed

    sections = [f.name for f in dataclasses.fields(FiltersConfig)]
    assert sorted(FILTERS.in_order()) == sorted(sections)  # one registered factory per config section
    assert FILTERS.in_order()[:3] == ["wellformed", "dedup", "decontam"]  # cheapest first
    config = FiltersConfig()
    for name in sections:
        getattr(config, name).enabled = False
    assert build_filters(config, FilterContext()) == []
    config.wellformed.enabled = config.dedup.enabled = True
    filters = build_filters(config, FilterContext())
    assert [f.name for f in filters] == ["wellformed", "dedup"]
    seeds = [Seed(id=f"s{i}", task="qa", instruction="Who wrote the first novel here?", answer="Ann") for i in range(2)]
    verdicts = [f.check(seeds) for f in filters]
    assert [v.keep for v in verdicts[0]] == [True, True] and [v.keep for v in verdicts[1]] == [True, False]


def test_ls_lists_filters_strategies_formats_and_metrics() -> None:
    from typer.testing import CliRunner

    from ctxsynth.cli import app

    out = CliRunner().invoke(app, ["ls"]).output
    assert "filters (in run order): wellformed, dedup, decontam, closed_book, judge, reliance" in out
    assert "distractor strategies: same_task, any_task, embedding, bm25, corpus:<corpus>" in out
    assert "metrics:" in out and "qa_f1" in out and "export formats:" in out and "trl_messages" in out
