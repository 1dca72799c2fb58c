"""Non-extractive answers (yes / no / unanswerable, answers that are no span of the document) are
checked by the support judge, not by string: hand-computed string verdicts, the reply parser, and
the synthesize stage against the real local OpenAI server with scripted judge replies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ctxsynth.errors import BackendUnavailable
from ctxsynth.llm.base import SamplingParams
from ctxsynth.llm.cache import CachedBackend, RequestCache
from ctxsynth.llm.openai.backend import OpenAIBackend
from ctxsynth.records import Seed
from ctxsynth.synth.config import SynthConfig
from ctxsynth.synth.stage import synthesize_shard
from ctxsynth.synth.tasks import ContextSynthesis
from ctxsynth.testing.judge_responders import judge_fields
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.scripting import Fault, Reply
from ctxsynth.verify.checks import VerifyConfig, answer_support, verify_context
from ctxsynth.verify.judge import parse_supported

TEXT = ("There is no record of a second voyage. The harbour master of Kalmar kept a ledger of every ship, "
        "and the ledger names the brig Svala in the spring of 1788 and never again. ")


def test_string_checks_alone_pass_or_fail_yes_no_for_the_wrong_reasons() -> None:
    old = VerifyConfig(non_extractive="string")
    # "no" occurs in TEXT as an ordinary word: the string check calls it supported
    assert answer_support(TEXT, ["no"], old) == {"supported": True, "method": "exact_alias", "score": 1.0}
    # "yes" occurs nowhere: the best one-token window has F1 0 -> unsupported, whatever the text says
    assert answer_support(TEXT, ["yes"], old) == {"supported": False, "method": "window_f1", "score": 0.0}


@pytest.mark.parametrize(("answer", "kind", "string_supported"), [
    ("no", "phrase", True), ("Yes.", "phrase", False), ("unanswerable", "phrase", False),
    ("Not mentioned", "phrase", False), ("the brig Odin", "not_a_span", False),
])
def test_non_extractive_answers_wait_for_the_judge(answer: str, kind: str, string_supported: bool) -> None:
    support = answer_support(TEXT, [answer], VerifyConfig())
    assert support["supported"] is None and support["method"] == "judge"
    assert support["non_extractive"] == kind and support["string"]["supported"] is string_supported
    assert support["judge_reason"] == "answer_not_supported"


def test_extractive_and_long_answers_keep_the_string_verdict() -> None:
    config = VerifyConfig()
    assert answer_support(TEXT, ["the brig Svala"], config)["method"] == "exact_alias"
    # "Svala 1788" is no span: its two tokens are 5 apart ("svala in spring of 1788"), so the best window
    # of 1-3 tokens is "svala" alone: P = 1, R = 1/2, F1 = 2/3 < 0.8 -> not a span -> judged
    support = answer_support(TEXT, ["Svala 1788"], config)
    assert support["supported"] is None and support["string"]["score"] == 0.6667
    # 4 x 6 = 24 tokens once articles are dropped (> 20: a long answer, checked by content-word recall);
    # content words harbour, master, kept, ledger occur, "ships" does not: recall 16/20 = 0.8 >= 0.5
    long_answer = " ".join(["the harbour master kept a ledger of ships"] * 4)
    support = answer_support(TEXT, [long_answer], config)
    assert support == {"supported": True, "method": "long_recall", "score": 0.8}


def test_verify_context_passes_a_waiting_answer_and_skips_the_judge_when_the_check_is_off() -> None:
    context = TEXT  # 38 words, within [30, 120] for a 60-word target
    reason, verdicts = verify_context(context, "stop", ["yes"], 60, VerifyConfig())
    assert reason is None and verdicts["support"]["supported"] is None
    off = VerifyConfig(checks=["too_short", "too_long"])
    reason, verdicts = verify_context(context, "stop", ["yes"], 60, off)
    assert reason is None and verdicts["support"]["method"] == "window_f1"  # recorded, not judged


def test_judge_reply_parser() -> None:
    assert parse_supported("SUPPORTED: yes") is True
    assert parse_supported("**Supported**: No.") is False
    assert parse_supported("Yes, the document says so.") is True
    assert parse_supported('{"supported": "true"}') is True
    assert parse_supported("The document is about ships.") is None
    assert parse_supported("") is None


def context_reply(body: dict[str, Any]) -> str:
    """A generated document for the seed named in the prompt (the question's first word)."""
    user = body["messages"][-1]["content"]
    name = next(w for w in user.split() if w.startswith("seed_")).rstrip("?.,")
    return f"Context: The chronicle of {name} begins in the town of Kalmar. {TEXT}"


class ScriptedJudge:
    """Generator and judge on one server; the judge's verdict per (seed, attempt) is scripted."""

    def __init__(self, verdicts: dict[str, list[str]]) -> None:
        self.verdicts = verdicts
        self.asked: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> Reply | str:
        fields = judge_fields(body)
        if fields is None:
            return context_reply(body)
        self.asked.append({**fields, "temperature": body.get("temperature"), "max_tokens": body.get("max_tokens")})
        name = next(w for w in fields["question"].split() if w.startswith("seed_")).rstrip("?.,")
        return Reply(self.verdicts[name].pop(0))


def _seed(name: str, answer: str) -> Seed:
    return Seed(id=name, task="squad", instruction=f"Did {name} sail again?", answer=answer)


def _synthesize(tmp_path: Path, server: OpenAIServer, seeds: list[Seed], judge_server: OpenAIServer | None = None,
                attempts: int = 2):  # noqa: ANN202
    def backend(srv: OpenAIServer, name: str) -> CachedBackend:
        return CachedBackend(OpenAIBackend("m", base_url=srv.url, max_retries=1, backoff_base_s=0.01),
                             RequestCache(tmp_path / f"{name}.sqlite"))

    gen = backend(server, "gen")
    judge = backend(judge_server, "judge") if judge_server is not None else None
    try:
        return synthesize_shard(seeds, ContextSynthesis(target_words=60), gen, SamplingParams(max_tokens=512),
                                SynthConfig(max_attempts=attempts), VerifyConfig(), run_seed=3, judge=judge)
    finally:
        gen.close()
        if judge is not None:
            judge.close()


def test_stage_asks_the_judge_for_non_extractive_answers_only(tmp_path: Path) -> None:
    judge = ScriptedJudge({"seed_yes": ["SUPPORTED: yes"], "seed_no": ["SUPPORTED: no", "SUPPORTED: yes"],
                           "seed_unans": ["SUPPORTED: no", "SUPPORTED: no"], "seed_chatty": ["I think so.", "Maybe."]})
    seeds = [_seed("seed_yes", "yes"), _seed("seed_no", "no"), _seed("seed_unans", "unanswerable"),
             _seed("seed_chatty", "yes"), _seed("seed_span", "the brig Svala")]
    with OpenAIServer(judge) as server:
        result = _synthesize(tmp_path, server, seeds)
    kept = {r.id: r for r in result.kept}
    rejected = {r.id: r for r in result.rejected}
    assert sorted(kept) == ["seed_no", "seed_span", "seed_yes"] and sorted(rejected) == ["seed_chatty", "seed_unans"]
    # the extractive answer never reached the judge; each judged attempt was asked once, deterministically
    assert sorted(a["question"].split()[1] for a in judge.asked) == [
        "seed_chatty", "seed_chatty", "seed_no", "seed_no", "seed_unans", "seed_unans", "seed_yes"]
    assert all(a["temperature"] == 0.0 and a["max_tokens"] == 16 for a in judge.asked)
    asked_yes = next(a for a in judge.asked if "seed_yes" in a["question"])
    assert asked_yes["answer"] == "yes" and asked_yes["document"] == kept["seed_yes"].context
    assert kept["seed_yes"].verdicts["support"]["judge"]["reply"] == "SUPPORTED: yes"
    assert kept["seed_span"].verdicts["support"]["method"] == "exact_alias"
    # the first "no" was rejected by the judge and regenerated; the second attempt passed
    assert [a.reason for a in kept["seed_no"].attempts] == ["answer_not_supported", None]
    assert rejected["seed_unans"].reason == "answer_not_supported"
    chatty = rejected["seed_chatty"].record["attempts"][-1]["verdicts"]["support"]
    assert chatty["supported"] is False and chatty["judge"]["how"] == "judge reply names no verdict"
    assert result.stats["judge_supported"] == 2 and result.stats["judge_unsupported"] == 5


def test_a_separate_judge_backend_gets_the_judge_requests(tmp_path: Path) -> None:
    judge = ScriptedJudge({"seed_yes": ["SUPPORTED: yes"]})
    with OpenAIServer(context_reply) as server, OpenAIServer(judge) as judge_server:
        result = _synthesize(tmp_path, server, [_seed("seed_yes", "yes")], judge_server)
        assert server.hits == 1 and judge_server.hits == 1
    assert [r.id for r in result.kept] == ["seed_yes"]


def test_a_judge_outage_stops_the_shard_unmarked(tmp_path: Path) -> None:
    judge = ScriptedJudge({"seed_yes": ["SUPPORTED: yes"]})
    with OpenAIServer(judge) as server:
        server.inject(Fault.http_error(503), times=10, match=lambda body: judge_fields(body) is not None)
        with pytest.raises(BackendUnavailable):
            _synthesize(tmp_path, server, [_seed("seed_yes", "yes")])
