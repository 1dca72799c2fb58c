"""The reliance filter's question probe option (`question`, `question_threshold`): the verdict rules on
hand-set scores, and the embedded SmolLM2 on hand-made pairs where an answer pasted into unrelated
text fools the answer probe but not the question probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxsynth.config import ConfigError, from_dict
from ctxsynth.filters.config import FiltersConfig, RelianceConfig
from ctxsynth.filters.reliance import RelianceFilter, build_scorer, question_reliance_scores
from ctxsynth.records import Seed

FACTS = [("Who built the stone mill on the river Lune?", "Ada Berg",
          "The stone mill on the river Lune was built by the engineer Ada Berg in 1840. It ground wheat for the "
          "valley until a flood damaged its wheel in 1911."),
         ("In which year did the Harlow tram line open?", "1902",
          "The Harlow tram line opened in 1902 and ran from the station to the market square. Horses pulled the "
          "first cars; electric cars replaced them ten years later."),
         ("What colour was the ferry to Skerry Island painted?", "green",
          "The ferry to Skerry Island was painted green so that fishermen could see it in fog. It carried twelve "
          "passengers and the mail twice a week.")]
UNRELATED = ("Rain fell on the coast for most of the week, and the markets closed early. {answer} The school "
             "choir sang at the harvest festival, and the baker sold out of bread by noon on Saturday.")


def _pairs() -> tuple[list[Seed], list[Seed]]:
    real = [Seed(f"r{i}", "qa", q, a, context=c) for i, (q, a, c) in enumerate(FACTS)]
    pasted = [Seed(f"p{i}", "qa", q, a, context=UNRELATED.format(answer=a)) for i, (q, a, _) in enumerate(FACTS)]
    return real, pasted


def _filter(**options: object) -> RelianceFilter:
    return RelianceFilter(RelianceConfig(**options), scorer=None)  # type: ignore[arg-type]


def test_defaults_leave_the_probe_off() -> None:
    config = FiltersConfig().reliance
    assert config.question is False and config.question_threshold is None


def test_verdict_rules_on_hand_set_scores() -> None:
    both = _filter(threshold=0.5, question_threshold=1.0)
    low_answer = both._verdict({"reliance": 0.2, "question_reliance": 0.1})
    assert (low_answer.keep, low_answer.reason) == (False, "low_context_reliance")  # the answer test comes first
    low_question = both._verdict({"reliance": 0.9, "question_reliance": 0.4})
    assert (low_question.keep, low_question.reason) == (False, "low_question_reliance")
    assert low_question.detail == "question probe 0.400 < 1.0"
    assert both._verdict({"reliance": 0.5, "question_reliance": 1.0}).keep  # a threshold is inclusive
    only_question = _filter(question_threshold=1.0)
    assert not only_question._verdict({"reliance": -3.0, "question_reliance": 0.0}).keep
    assert _filter(question=True)._verdict({"reliance": -3.0, "question_reliance": -3.0}).keep  # score only


def test_question_probe_with_the_embedded_model(tmp_path: Path) -> None:
    """Answer probe: a pasted answer raises reliance. Question probe: the real context scores above the
    pasted one on every pair, and a threshold between them drops exactly the pasted ones."""
    real, pasted = _pairs()
    config = RelianceConfig(question=True)
    scorer = build_scorer(config, tmp_path / "scores.sqlite")
    scored = RelianceFilter(config, scorer).check(real + pasted)
    assert all(v.keep for v in scored)
    probe = [v.scores["question_reliance"] for v in scored]
    direct = question_reliance_scores(scorer, [(s.context or "", s.instruction) for s in real + pasted])
    assert probe == direct
    real_q, pasted_q = probe[:3], probe[3:]
    assert all(r > p for r, p in zip(real_q, pasted_q, strict=True)), probe
    assert min(real_q) > max(pasted_q), probe
    assert all(v.scores["reliance"] > 0 for v in scored[3:])  # the pasted answer still raises the answer probe

    cut = (min(real_q) + max(pasted_q)) / 2
    gated = RelianceFilter(RelianceConfig(question_threshold=cut), scorer).check(real + pasted)
    assert [v.reason for v in gated] == [None] * 3 + ["low_question_reliance"] * 3
    assert [v.scores["question_reliance"] for v in gated] == probe  # from the cache, the same numbers
    plain = RelianceFilter(RelianceConfig(), scorer).check(real)
    assert all("question_reliance" not in v.scores for v in plain)


def test_config_keys_load_from_yaml_and_reject_bad_values() -> None:
    config = from_dict(FiltersConfig, {"reliance": {"question": True, "question_threshold": 1}})
    assert config.reliance.question is True and config.reliance.question_threshold == 1.0
    with pytest.raises(ConfigError, match=r"reliance\.question_threshold: expected float"):
        from_dict(FiltersConfig, {"reliance": {"question_threshold": "high"}})
