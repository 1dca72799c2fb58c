"""Every verification failure has a named reason, triggered here by a crafted generator reply that
goes through the real HTTP path (local OpenAI-protocol server -> openai backend -> synthesize)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxsynth.llm.base import SamplingParams
from ctxsynth.llm.cache import CachedBackend, RequestCache
from ctxsynth.llm.openai.backend import OpenAIBackend
from ctxsynth.records import Seed
from ctxsynth.synth.stage import SynthConfig, synthesize_shard
from ctxsynth.synth.tasks import ContextSynthesis, ParseError
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import document, prompt_fields
from ctxsynth.testing.scripting import Fault, Reply
from ctxsynth.verify.checks import VerifyConfig

TARGET = 100


def crafted(body: dict) -> Reply:
    """The seed's instruction selects the misbehaviour."""
    f = prompt_fields(body)
    good = document(f["question"], f["answer"], TARGET, f["seed"])
    kind = f["question"].split()[0]
    return {
        "ok": Reply("Context: " + good),
        "nolabel": Reply(good),
        "refuse": Reply("Context: I'm sorry, but I cannot help with writing this document. " + good),
        "cut": Reply("Context: " + good, finish_reason="length"),
        "short": Reply("Context: The answer is " + f["answer"] + "."),
        "long": Reply("Context: " + document(f["question"], f["answer"], TARGET * 5, f["seed"])),
        "loop": Reply("Context: " + " ".join(["the cat sat on the mat"] * 25) + " " + f["answer"]),
        "unsupported": Reply("Context: " + document(f["question"], "", TARGET, f["seed"])),
        "broken": Reply("Context: " + good),
    }[kind]


CASES = {
    "ok": None, "nolabel": "parse_failure", "refuse": "refusal", "cut": "truncated", "short": "too_short",
    "long": "too_long", "loop": "repetition", "unsupported": "answer_not_supported", "broken": "request_failed",
}


def test_each_rejection_reason_is_triggered_by_a_crafted_reply(tmp_path: Path) -> None:
    seeds = [Seed(id=k, task="squad", instruction=f"{k} what was the zebulon count?", answer="Quintessa Varlow")
             for k in CASES]
    with OpenAIServer(crafted) as server:
        # the "broken" seed's requests always fail with HTTP 400 (not retried)
        server.inject(Fault.http_error(400), times=10, match=lambda b: "broken what" in str(b["messages"]))
        backend = CachedBackend(OpenAIBackend("m", base_url=server.url, max_retries=1, backoff_base_s=0.01),
                                RequestCache(tmp_path / "cache.sqlite"))
        result = synthesize_shard(seeds, ContextSynthesis(target_words=TARGET), backend, SamplingParams(max_tokens=512),
                                  SynthConfig(target_words=TARGET, max_attempts=2), VerifyConfig(), run_seed=1)
        backend.close()
    reasons = {r.id: r.reason for r in result.rejected}
    assert [k.id for k in result.kept] == ["ok"]
    assert reasons == {k: v for k, v in CASES.items() if v}
    # each failed seed was tried twice with two different sampling seeds, and both attempts are kept
    for rejected in result.rejected:
        attempts = rejected.record["attempts"]
        assert [a["attempt"] for a in attempts] == [1, 2]
        assert attempts[0]["sampling_seed"] != attempts[1]["sampling_seed"]
    kept = result.kept[0]
    assert "Quintessa Varlow" in kept.context and not kept.context.startswith("Context")
    assert kept.verdicts["support"]["method"] == "exact_alias"
    assert result.stats["dropped_truncated"] == 1 and result.stats["n_out"] == 1


def test_parse_keeps_text_after_first_context_label() -> None:
    task = ContextSynthesis()
    assert task.parse("Sure.\n**Context:** Alpha. Context: beta") == "Alpha. Context: beta"
    with pytest.raises(ParseError):
        task.parse("no label here")
    with pytest.raises(ParseError):
        task.parse("Context:   ")
    with pytest.raises(ParseError, match="echoes the prompt"):
        task.parse("Context: [MISSING]\n\nQuestion: Who?\n\nAnswer: Ann")


def test_prompt_names_genre_target_and_pair() -> None:
    seed = Seed(id="1", task="qmsum", instruction="What did Anna decide?", answer=["to delay", "delay"])
    messages = ContextSynthesis(target_words=700).prompt(seed)
    user = messages[-1]["content"]
    assert messages[0]["role"] == "system" and "Context:" in messages[0]["content"]
    assert "meeting transcript" in user and "about 700 words" in user
    assert "Question: What did Anna decide?" in user and "Answer: to delay" in user


def test_long_answers_use_content_word_recall() -> None:
    from ctxsynth.verify.checks import answer_support

    summary = "The agency found that budget shortfalls delayed maintenance across regional airports and recommended new funding rules for operators"
    cfg = VerifyConfig(long_answer_words=10, long_answer_recall=0.6)
    assert answer_support("Report. " + summary.replace("delayed", "postponed"), [summary], cfg)["supported"]
    assert not answer_support("An unrelated text about gardening and roses in spring.", [summary], cfg)["supported"]
