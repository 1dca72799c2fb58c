"""Each parse or verification failure of the two baselines has a named reason, triggered by a crafted
generator reply through the real HTTP path (local OpenAI server -> openai backend -> synthesize)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctxsynth.llm.base import SamplingParams
from ctxsynth.llm.cache import CachedBackend, RequestCache
from ctxsynth.llm.openai.backend import OpenAIBackend
from ctxsynth.records import Seed, Synthesized, synthesized_from_dict
from ctxsynth.synth.chunks import ChunkSource
from ctxsynth.synth.config import SynthConfig
from ctxsynth.synth.instruction import InstructionSynthesis
from ctxsynth.synth.multidoc import MultiDocSynthesis, parse_documents
from ctxsynth.synth.qa_format import parse_qa
from ctxsynth.synth.stage import synthesize_shard, synthesized_to_dict
from ctxsynth.synth.tasks import ParseError
from ctxsynth.testing.baseline_responders import (
    instruction_fields,
    multidoc_documents,
    multidoc_fields,
    qa_about,
    render_documents,
)
from ctxsynth.testing.judge_responders import containment_judge
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.scripting import Reply
from ctxsynth.verify.checks import VerifyConfig

DOC = ("Marlow Fenwick founded the Ostrava glassworks in 1871 after a long apprenticeship in Venice. "
       "The works produced green bottle glass for the breweries of the region. ") * 3


def _run(tmp_path: Path, responder, task, seeds: list[Seed]):  # noqa: ANN001, ANN202
    with OpenAIServer(responder) as server:
        backend = CachedBackend(OpenAIBackend("m", base_url=server.url, max_retries=1, backoff_base_s=0.01),
                                RequestCache(tmp_path / "cache.sqlite"))
        result = synthesize_shard(seeds, task, backend, SamplingParams(max_tokens=512),
                                  SynthConfig(max_attempts=1), VerifyConfig(), run_seed=1)
        backend.close()
    return result


def instruction_crafted(body: dict) -> Reply:
    """The document's first word selects the misbehaviour; judge requests get a containment verdict."""
    judged = containment_judge(body)
    if judged is not None:
        return judged
    doc = instruction_fields(body)["document"]
    kind = doc.split()[0]
    question, answer = qa_about(doc, body.get("seed"))
    return {
        "ok": Reply(f"Question: {question}\nAnswer: {answer}"),
        "nolabel": Reply(f"{question}\n{answer}"),
        "twice": Reply(f"Question: {question}\nAnswer: {answer}\nQuestion: another?\nAnswer: x"),
        "cut": Reply(f"Question: {question}\nAnswer: {answer}", finish_reason="length"),
        "refuse": Reply("Question: I'm sorry, I cannot write a question about this.\nAnswer: none"),
        "tiny": Reply("Question: Why?\nAnswer: glass"),
        "copied": Reply("Question: The works produced green bottle glass for the breweries of the region.\nAnswer: yes"),
        "leaky": Reply("Question: Did Marlow Fenwick found the glassworks?\nAnswer: Marlow Fenwick"),
        "invented": Reply("Question: Who financed the glassworks in Ostrava?\nAnswer: the Rothschild bank of Vienna"),
    }[kind]


INSTRUCTION_CASES = {
    "ok": None, "nolabel": "parse_failure", "twice": "parse_failure", "cut": "truncated", "refuse": "refusal",
    "tiny": "question_too_short", "copied": "question_copied", "leaky": "answer_in_question",
    "invented": "answer_not_grounded",
}


def test_each_instruction_synthesis_reason_is_triggered_by_a_crafted_reply(tmp_path: Path) -> None:
    seeds = [Seed(id=k, task="squad", instruction="orig?", answer="orig", context=f"{k} {DOC}")
             for k in INSTRUCTION_CASES] + [Seed(id="nodoc", task="squad", instruction="q?", answer="a")]
    result = _run(tmp_path, instruction_crafted, InstructionSynthesis(chunk_words=3000), seeds)
    reasons = {r.id: r.reason for r in result.rejected}
    assert [k.id for k in result.kept] == ["ok"]
    assert reasons == {**{k: v for k, v in INSTRUCTION_CASES.items() if v}, "nodoc": "no_document"}
    kept = result.kept[0]
    assert kept.seed.context is None and kept.provenance["original_seed"]["answer"] == "orig"
    assert kept.provenance["chunk"]["source"] == "seed_context" and kept.context == f"ok {DOC}".strip()
    # the invented answer is no span of the document: the judge, not the string check, rejected it
    invented = next(r for r in result.rejected if r.id == "invented").record["attempts"][-1]["verdicts"]["support"]
    assert invented["method"] == "judge" and invented["non_extractive"] == "not_a_span"
    assert invented["judge"]["reply"] == "SUPPORTED: no" and invented["string"]["supported"] is False
    assert result.stats["judge_unsupported"] == 1


def test_question_answer_parser_is_strict_but_tolerates_markdown() -> None:
    assert parse_qa("**Question:** Who?\n**Answer:** Ann").answer == "Ann"
    for bad in ("Answer: a\nQuestion: q", "Question: \nAnswer: a", "Question: q\nAnswer:   ", "just text"):
        with pytest.raises(ParseError):
            parse_qa(bad)


def test_chunks_are_contiguous_seeded_per_record_and_read_corpora(tmp_path: Path) -> None:
    text = " ".join(f"Sentence number {i} says something plain." for i in range(400))
    seed = Seed(id="s", task="t", instruction="q", answer="a", context=text)
    a, b = ChunkSource(100, None, 0).chunk(seed), ChunkSource(100, None, 0).chunk(seed)
    assert a == b and a.text in text and 100 <= a.words < 110 and a.text.startswith("Sentence")
    other = [ChunkSource(100, None, s).chunk(seed).start_char for s in range(6)]
    assert len(set(other)) > 1  # the start depends on the run seed (and the seed id)
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": text}) + "\n")
    from_corpus = ChunkSource(100, str(tmp_path / "c.jsonl"), 0).chunk(Seed("x", "t", "q", "a"))
    assert from_corpus.source.startswith("corpus:") and from_corpus.words >= 100


HOTPOT_META = {
    "supporting_facts": [["Ada Lindqvist", 0], ["Norrby Observatory", 1]],
    "paragraphs": [{"title": "Ada Lindqvist", "sentences": ["Ada Lindqvist was a Swedish astronomer born in Kalmar."]},
                   {"title": "Norrby Observatory", "sentences": ["It opened in 1902.",
                                                                 " Its first director was Ada Lindqvist."]}],
}


def multidoc_crafted(body: dict) -> Reply:
    f = multidoc_fields(body)
    kind = f["question"].split()[0]
    docs = multidoc_documents(f)
    if kind == "nodelim":
        return Reply("\n\n".join(docs))
    if kind == "misnumbered":
        return Reply(render_documents(docs).replace("Document 2", "Document 3"))
    if kind == "count":
        docs = docs[:1]
    elif kind == "missing":
        docs = [docs[0], docs[1].replace("Ada Lindqvist", "someone").replace("director", "keeper")]
    elif kind == "together":
        docs = [docs[0] + " " + f["facts"][2], docs[1]]
    elif kind == "unsupported":
        docs = [d.replace(f["answer"], "somewhere") for d in docs]
    elif kind == "short":
        docs = [docs[0], f["facts"][2] + " " + f["answer"]]
    elif kind == "refuse":
        docs = ["I'm sorry, but I cannot write these documents. " + docs[0], docs[1]]
    return Reply(render_documents(docs))


MULTIDOC_CASES = {
    "ok": None, "nodelim": "parse_failure", "misnumbered": "parse_failure", "count": "wrong_document_count",
    "missing": "evidence_missing", "together": "evidence_not_split", "unsupported": "answer_not_supported",
    "short": "too_short", "refuse": "refusal",
}


def test_each_multidoc_reason_is_triggered_by_a_crafted_reply(tmp_path: Path) -> None:
    seeds = [Seed(id=k, task="hotpotqa", instruction=f"{k} where was the first director of Norrby Observatory born?",
                  answer="Kalmar", meta=HOTPOT_META) for k in MULTIDOC_CASES]
    result = _run(tmp_path, multidoc_crafted, MultiDocSynthesis(target_words=200), seeds)
    assert {r.id: r.reason for r in result.rejected} == {k: v for k, v in MULTIDOC_CASES.items() if v}
    (kept,) = result.kept
    assert len(kept.documents) == 2 and kept.context == "\n\n".join(kept.documents)
    assert "Ada Lindqvist was a Swedish" in kept.documents[0] and "first director" in kept.documents[1]
    assert kept.provenance["evidence_parts"][1].startswith("Its first director")


def test_document_parser_requires_ordered_delimiters() -> None:
    assert parse_documents("Sure.\n=== Document 1 ===\nA\n**=== Document 2 ===**\nB") == ["A", "B"]
    for bad in ("no delimiters", "=== Document 2 ===\nA", "=== Document 1 ===\n\n=== Document 2 ===\nB"):
        with pytest.raises(ParseError):
            parse_documents(bad)


def test_single_document_records_keep_their_old_format_and_old_records_load() -> None:
    seed = Seed(id="a", task="t", instruction="q", answer="x")
    plain = synthesized_to_dict(Synthesized("a", "t", seed, "ctx", {}, {}))
    assert "documents" not in plain and synthesized_from_dict(plain).documents == []
    multi = synthesized_to_dict(Synthesized("a", "t", seed, "d1\n\nd2", {}, {}, documents=["d1", "d2"]))
    assert synthesized_from_dict(multi).documents == ["d1", "d2"]
