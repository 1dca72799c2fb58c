"""Model-backed filters: closed-book probe and judge over a real local OpenAI-protocol server,
and the embedded SmolLM2 for the probe and the context-reliance score on a handful of real seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ctxsynth.errors import BackendUnavailable
from ctxsynth.filters.closed_book import ClosedBookFilter, clean_prediction
from ctxsynth.filters.config import ClosedBookConfig, FilterLLM, JudgeConfig, RelianceConfig
from ctxsynth.filters.judge import JudgeFilter, JudgeItem, parse_judgement
from ctxsynth.filters.reliance import RelianceFilter, build_scorer, score_synthesized
from ctxsynth.llm.openai.backend import OpenAIBackend
from ctxsynth.records import Seed, Synthesized
from ctxsynth.seeds import SeedsConfig, read_seeds
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.scripting import Fault, Hit

KNOWN = {"What is the capital of France?": "Paris.", "Who wrote Hamlet?": "Answer: William Shakespeare",
         "In what year did the committee first meet in Vaduz?": "I think it was in the year 1712 or maybe later on"}


def _probe_responder(body: dict[str, Any]) -> str:
    user = body["messages"][-1]["content"]
    return next((reply for q, reply in KNOWN.items() if q in user), "no idea")


def _backend(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIBackend:
    monkeypatch.setenv("CTXSYNTH_FILTER_KEY", "test")
    return OpenAIBackend("test-model", base_url=server.url, api_key_env="CTXSYNTH_FILTER_KEY", timeout_s=5.0,
                         max_retries=1, backoff_base_s=0.01, backoff_max_s=0.05)


def _seed(i: str, q: str, a: str | list[str], context: str | None = None) -> Seed:
    return Seed(id=i, task="qa", instruction=q, answer=a, context=context)


def test_clean_prediction_strips_labels_quotes_and_extra_lines() -> None:
    assert clean_prediction("**Answer:** \"Paris\".\nIt is in France.") == "Paris"


def test_closed_book_drops_known_answers_and_keeps_unknown_or_rambling(monkeypatch: pytest.MonkeyPatch) -> None:
    seeds = [_seed("fr", "What is the capital of France?", "Paris"),
             _seed("ham", "Who wrote Hamlet?", ["Shakespeare", "William Shakespeare"]),
             _seed("vaduz", "In what year did the committee first meet in Vaduz?", "1712"),
             _seed("yn", "Is the capital of France Paris?", "yes"),
             _seed("pick", "Who is older, Anna Vell or Ben Stoke?", "Ben Stoke"),
             _seed("obscure", "Which clerk signed the 1712 minutes?", "Johann Ospelt")]
    with OpenAIServer(_probe_responder) as server:
        verdicts = ClosedBookFilter(ClosedBookConfig(), _backend(server, monkeypatch)).check(seeds)
        assert server.hits == 4  # the yes/no seed and the choice between named options are not probed
    by_id = {s.id: v for s, v in zip(seeds, verdicts, strict=True)}
    assert by_id["fr"].reason == "answerable_closed_book" and by_id["fr"].scores["exact"]
    assert by_id["ham"].reason == "answerable_closed_book"
    assert by_id["vaduz"].keep  # the answer is buried in a long guess: not knowledge
    assert by_id["yn"].keep and by_id["yn"].scores["probed"] is False
    assert by_id["pick"].keep and by_id["pick"].scores["probed"] is False
    assert by_id["obscure"].keep and by_id["obscure"].scores["f1"] == 0.0


def test_model_filters_stop_on_a_down_endpoint_instead_of_keeping_unprobed_seeds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 500 on one probe stops the filter (the stage stays unmarked, the rerun sends it again); a
    400, the request's own failure, keeps that seed unprobed as before."""
    def rule(status: int):  # type: ignore[no-untyped-def]
        def fault(hit: Hit) -> Fault | None:
            return Fault.http_error(status) if "Hamlet" in hit.body["messages"][-1]["content"] else None
        return fault

    seeds = [_seed("fr", "What is the capital of France?", "Paris"),
             _seed("ham", "Who wrote Hamlet?", ["Shakespeare", "William Shakespeare"])]
    with OpenAIServer(_probe_responder, fault_rule=rule(500)) as server:
        with pytest.raises(BackendUnavailable, match="1 request.*infrastructure reasons.*filter stage was not marked"):
            ClosedBookFilter(ClosedBookConfig(), _backend(server, monkeypatch)).check(seeds)
    with OpenAIServer(_probe_responder, fault_rule=rule(400)) as server:
        verdicts = ClosedBookFilter(ClosedBookConfig(), _backend(server, monkeypatch)).check(seeds)
    assert verdicts[0].reason == "answerable_closed_book"
    assert verdicts[1].keep and verdicts[1].scores["probed"] is False
    items = [JudgeItem("ham", "Hamlet was written by Shakespeare.", "Who wrote Hamlet?", "Shakespeare")]
    with OpenAIServer(_probe_responder, fault_rule=rule(503)) as server:
        with pytest.raises(BackendUnavailable, match="infrastructure reasons"):
            JudgeFilter(JudgeConfig(enabled=True), _backend(server, monkeypatch)).check_items(items)


@pytest.mark.parametrize(("reply", "supported", "leak"), [
    ("SUPPORTED: yes\nLEAKS_QUESTION: no", True, False),
    ("**Supported**: No.\n**Leaks question**: Yes, it does.", False, True),
    ('{"supported": "true", "leak": "false"}', True, False),
    ("Sure! LEAKS_QUESTION - no. Also SUPPORTS: yes", True, False),
    ("I cannot tell.", None, None),
])
def test_judge_parser_reads_strict_and_sloppy_replies(reply: str, supported: bool | None, leak: bool | None) -> None:
    j = parse_judgement(reply)
    assert (j.supported, j.leak) == (supported, leak)


def test_judge_filter_drops_unsupported_and_leaking_contexts(monkeypatch: pytest.MonkeyPatch) -> None:
    def responder(body: dict[str, Any]) -> str:
        user = body["messages"][-1]["content"]
        if "ledger" in user:
            return "SUPPORTED: no\nLEAKS_QUESTION: no"
        if "verbatim" in user:
            return "SUPPORTED: yes\nLEAKS_QUESTION: yes"
        return "Looks fine to me." if "vague" in user else "SUPPORTED: yes\nLEAKS_QUESTION: no"

    items = [JudgeItem("ok", "The bridge opened in 1932.", "When did the bridge open?", "1932"),
             JudgeItem("unsup", "The ledger lists cattle.", "When did the bridge open?", "1932"),
             JudgeItem("leak", "verbatim: When did the bridge open? 1932.", "When did the bridge open?", "1932"),
             JudgeItem("odd", "A vague text.", "When did the bridge open?", "1932"), None]
    with OpenAIServer(responder) as server:
        verdicts = JudgeFilter(JudgeConfig(enabled=True), _backend(server, monkeypatch)).check_items(items)
    assert [v.reason for v in verdicts] == [None, "judge_unsupported", "judge_leak", None, None]
    assert verdicts[3].scores["supported"] is None and verdicts[4].scores["judged"] is False


@pytest.fixture(scope="module")
def few_seeds() -> list[Seed]:
    return [s for src in ("squad", "hotpotqa") for s in read_seeds(SeedsConfig(source=src, limit=2, sample_seed=0))
            if isinstance(s, Seed)]


@pytest.mark.slow
def test_reliance_prefers_the_real_context_and_is_cached(few_seeds: list[Seed], tmp_path: Path) -> None:
    """Real human context raises the answer's log-prob more than another seed's context; the second
    call is answered from the SQLite cache with identical numbers."""
    config = RelianceConfig(threshold=0.0)
    scorer = build_scorer(config, tmp_path / "scores.sqlite")
    real = RelianceFilter(config, scorer).check(few_seeds)
    swapped = [Seed(**{**s.__dict__, "context": few_seeds[(i + 2) % 4].context}) for i, s in enumerate(few_seeds)]
    wrong = RelianceFilter(config, scorer).check(swapped)
    assert sum(r.scores["reliance"] > w.scores["reliance"] for r, w in zip(real, wrong, strict=True)) >= 3
    assert any(not w.keep and w.reason == "low_context_reliance" for w in wrong)
    fresh = build_scorer(config, tmp_path / "scores.sqlite")
    again = RelianceFilter(config, fresh).check(few_seeds)
    assert fresh._model is None  # never loaded: every score came from the cache
    assert [v.scores for v in again] == [v.scores for v in real]
    synth = Synthesized(few_seeds[0].id, "qa", few_seeds[0], few_seeds[0].context or "", {}, {})
    assert score_synthesized([synth], config, scorer=scorer)[0].verdicts["reliance"]["reliance"] == \
        real[0].scores["reliance"]


@pytest.mark.slow
def test_closed_book_probe_runs_with_the_embedded_model(few_seeds: list[Seed]) -> None:
    config = ClosedBookConfig(llm=FilterLLM(max_tokens=12))
    seeds = [_seed("fr", "What is the capital of France?", "Paris"), *few_seeds[:2]]
    verdicts = ClosedBookFilter(config, config.llm.build()).check(seeds)
    assert verdicts[0].reason == "answerable_closed_book"  # SmolLM2 knows this one
    assert all(v.scores.get("probed") for v in verdicts)
    assert all(isinstance(v.scores["prediction"], str) for v in verdicts)
