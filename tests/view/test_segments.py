"""Where the page draws each document: the segments cover the user message exactly, in order, the
gold one is the recorded span, distractors are split at the separator (numbered ones too), and a
gap that does not split into the recorded number of distractors is shown as one block, not guessed."""

from __future__ import annotations

from pathlib import Path

from ctxsynth.assemble.templates import TemplateSet
from ctxsynth.io import read_shards
from ctxsynth.view.records import export_view
from ctxsynth.view.segments import distractor_label, document_segments, support_span

HEAD, TAIL = "Read these.\n\n", "\n\nQuestion: q?"


def _sample(docs: list[str], gold: int, separator: str = "blank_line") -> dict:
    joiner = "\n\n" if separator != "none" else "\n"
    parts = [(f"Document {i + 1}:\n" if separator == "numbered" else "") + d for i, d in enumerate(docs)]
    user = HEAD + joiner.join(parts) + TAIL
    start = user.index(docs[gold])
    return {"messages": [{"role": "user", "content": user}], "separator": separator, "gold_index": gold,
            "gold_indices": [gold], "gold_char_span": [start, start + len(docs[gold])], "n_documents": len(docs),
            "distractor_ids": [f"corpus:wiki:{i}" for i in range(len(docs) - 1)], "distractor_strategy": "corpus:wiki"}


def _texts(sample: dict, head: str | None = HEAD, tail: str | None = TAIL) -> list[tuple[str, str]]:
    user = sample["messages"][0]["content"]
    segments = document_segments(sample, head, tail)
    assert "".join(user[s:e] for s, e, *_ in segments) == user
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))
    return [(kind, user[s:e]) for s, e, kind, _ in segments if kind != "sep"]


def test_each_document_is_found_for_every_gold_slot_and_separator() -> None:
    docs = ["alpha one.", "beta two.", "gamma three.", "delta four."]
    for separator in ("blank_line", "none", "numbered"):
        for gold in range(4):
            texts = _texts(_sample(docs, gold, separator))
            assert texts[0] == ("head", HEAD) and texts[-1] == ("tail", TAIL)
            assert [t for _, t in texts[1:-1]] == docs
            assert [k for k, _ in texts[1:-1]] == ["distractor" if i != gold else "gold" for i in range(4)]


def test_a_distractor_with_a_blank_line_of_its_own_is_one_block_not_a_guess() -> None:
    sample = _sample(["first para.\n\nsecond para.", "gold doc.", "third."], 1)
    texts = _texts(sample)
    assert texts[1] == ("distractors", "first para.\n\nsecond para.\n\n")
    assert ("gold", "gold doc.") in texts and ("distractor", "third.") in texts
    assert _texts(sample, None, None)[0][0] == "distractors"  # template unknown: still covers the message


def test_labels_support_span_and_export_reference(tmp_path: Path) -> None:
    assert distractor_label("corpus:wiki", "corpus:wiki:4") == "corpus wiki"
    assert distractor_label("same_task", "q7") == "another context (same task)"
    assert distractor_label("bm25:wiki", "corpus:wiki:9") == "hard negative (bm25) from corpus wiki"
    assert distractor_label("embedding", "q7") == "hard negative (embedding) from the run's contexts"
    assert support_span("xx The Answer yy", 2, 16, ["the answer"]) == [3, 13]
    assert support_span("xx", 0, 2, ["nope"]) is None
    row = {"id": "a", "prompt": [{"role": "user", "content": "U"}], "completion": [{"role": "assistant", "content": "A"}]}
    view = export_view(row, "trl_prompt_completion", lambda text: text == "U")
    assert view["masked"] == [{"role": "user", "same_as_user": True}] and view["trained"][0]["text"] == "A"


def test_segments_of_a_real_run_put_the_gold_where_the_sample_says(human_run: Path) -> None:
    templates = TemplateSet("auto")
    for sample in read_shards(human_run / "assemble"):
        head, tail = templates.for_task(sample["task"]).split(sample["meta"]["instruction"])
        texts = _texts(sample, head, tail)
        user = sample["messages"][0]["content"]
        start, end = sample["gold_char_span"]
        assert [t for k, t in texts if k == "gold"] == [user[start:end]]
        assert sum(k == "distractor" for k, _ in texts) == sample["n_documents"] - 1


def test_a_rejected_synthesis_record_keeps_its_id_reason_and_every_attempt(human_run: Path, tmp_path: Path) -> None:
    """A rejected synthesis record carries no id of its own (the Rejected wrapper does)."""
    import json
    import shutil

    from ctxsynth.io import write_jsonl
    from ctxsynth.view import build_view

    run = Path(shutil.copytree(human_run, tmp_path / "run"))
    seed = next(read_shards(run / "seeds" / "rejected"))["record"]
    attempts = [{"attempt": i, "reason": "answer_not_supported", "text": f"Context: try {i} <b>x</b>", "verdicts": {}}
                for i in (1, 2)]
    write_jsonl(run / "synth" / "rejected" / "shard-00001.jsonl.gz", [{
        "id": seed["id"], "stage": "synthesize", "reason": "answer_not_supported", "detail": "2 attempt(s) failed",
        "record": {"attempts": attempts, "provenance": {"model": "m"}, "seed": seed}}])
    page = build_view(run)
    data = page.parent / "index_files" / "data"
    rows = json.loads((data / "index.js").read_text()[len("CTXV.index("):-len(");\n")])
    row = next(r for r in rows if r["id"] == seed["id"])
    assert row["v"] == "rejected" and row["stage"] == "synthesize" and row["r"] == "answer_not_supported"
    assert len(rows) == 7  # no row without an id
    chunk = (data / f"synth-{row['c']['synth'][0]}.js").read_text()
    assert "Context: try 1 <b>x</b>" in chunk and "Context: try 2 <b>x</b>" in chunk
