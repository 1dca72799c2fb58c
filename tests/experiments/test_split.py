"""The leakage check: every kind of shared key is found, and nothing else is."""

from __future__ import annotations

import pytest

from ctxsynth.errors import InputError
from ctxsynth.experiments.split import (
    LeakageError,
    Unit,
    check_split,
    find_overlaps,
    normalize,
    unit_from_seed,
)
from ctxsynth.records import Seed

PARIS = "Paris is the capital of France. It lies on the Seine."


def _roles(**extra: list[Unit]) -> dict[str, list[Unit]]:
    roles = {
        "general": [Unit("g1", paragraphs=("The Rhine flows north.",), questions=("Where does the Rhine flow?",),
                         articles=("Rhine",))],
        "seeds": [Unit("s1", paragraphs=(PARIS,), questions=("What is the capital of France?",), articles=("France",)),
                  Unit("h1", paragraphs=("Ada Berg built mills.",), questions=("Who built mills?",), titles=("Ada Berg",))],
        "test": [Unit("t1", paragraphs=("Warsaw is on the Vistula.",), questions=("Which river?",), articles=("Warsaw",))],
    }
    for name, units in extra.items():
        roles[name] = roles.get(name, []) + units
    return roles


def test_disjoint_roles_pass() -> None:
    report = check_split(_roles(), test_roles=["test"])
    assert report.overlaps == [] and report.counts == {"general": 1, "seeds": 2, "test": 1}


def test_the_old_leak_is_found_a_seed_paragraph_reused_by_a_general_row() -> None:
    # the first Table 3: general rows were drawn from the SQuAD seed paragraphs; spacing and case differ here
    leak = Unit("g2", paragraphs=("  paris IS the capital of France.\nIt lies on the Seine ",), questions=("Q?",),
                articles=("France",))
    report = find_overlaps(_roles(general=[leak]), test_roles=["test"])
    assert [(o.kind, o.roles, o.ids) for o in report.overlaps] == [("paragraph", ("general", "seeds"), ("g2", "s1"))]
    with pytest.raises(LeakageError, match="1 paragraph"):
        check_split(_roles(general=[leak]), test_roles=["test"])


@pytest.mark.parametrize(("unit", "kind"), [
    (Unit("x", questions=("what is the CAPITAL of France",)), "question"),
    (Unit("x", titles=("Ada Berg",)), "title"),
])
def test_a_shared_question_or_hotpotqa_title_between_training_roles_is_found(unit: Unit, kind: str) -> None:
    report = find_overlaps(_roles(writer=[unit]))
    assert [o.kind for o in report.overlaps] == [kind]


def test_articles_only_count_between_test_and_training() -> None:
    same_article = Unit("w1", paragraphs=("Another paragraph about France.",), articles=("France",))
    assert find_overlaps(_roles(writer=[same_article]), test_roles=["test"]).overlaps == []  # training roles may share
    on_test_article = Unit("w2", paragraphs=("Warsaw has a palace.",), articles=("Warsaw",))
    report = find_overlaps(_roles(writer=[on_test_article]), test_roles=["test"])
    assert [(o.kind, o.roles) for o in report.overlaps] == [("article", ("test", "writer"))]


def test_unknown_test_role_is_an_error() -> None:
    with pytest.raises(InputError, match="not among the roles"):
        find_overlaps(_roles(), test_roles=["tests"])


def test_normalize_ignores_case_punctuation_and_spacing() -> None:
    assert normalize("  Hello,\n World! ") == normalize("hello world") == "hello world"


def test_unit_from_a_hotpotqa_seed_takes_supporting_or_all_paragraphs() -> None:
    meta = {"dataset": "hotpotqa", "supporting_titles": ["B"],
            "paragraphs": [{"title": "A", "sentences": ["One. ", "Two."]}, {"title": "B", "sentences": ["Three."]}]}
    seed = Seed("h", "multi_doc_qa", "Q?", "x", context="B\nThree.", meta=meta)
    assert unit_from_seed(seed).paragraphs == ("Three.",) and unit_from_seed(seed).titles == ("B",)
    assert unit_from_seed(seed, all_paragraphs=True).titles == ("A", "B")
    with pytest.raises(InputError, match="knows the built-in"):
        unit_from_seed(Seed("u", "qa", "Q?", "a", meta={}))
