"""Context-writer training rows: the synthesis prompt with the human context's length -> "Context: <it>",
disjoint from the excluded (experiment) seeds; and the `ctxsynth writer-data` command."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.records import Seed
from ctxsynth.synth.tasks import ContextSynthesis
from ctxsynth.synth.writer import target_words, writer_rows


def _seed(i: int, words: int = 47) -> Seed:
    return Seed(id=f"s{i}", task="single_doc_qa", instruction=f"Where did ship {i} sail?", answer=f"Port {i}",
                context=" ".join([f"Port {i} is where the ship sailed."] + ["word"] * (words - 7)))


def test_target_words_rounds_to_ten_with_a_floor() -> None:
    assert [target_words(" ".join(["w"] * n)) for n in (47, 44, 45, 3, 0)] == [50, 40, 40, 10, 10]


def test_rows_use_the_synthesis_prompt_and_reply_with_the_human_context() -> None:
    task = ContextSynthesis(target_words=2000)
    seeds = [_seed(0), _seed(1, words=83), Seed(id="bare", task="single_doc_qa", instruction="Q?", answer="A")]
    data = writer_rows(seeds, task)
    assert [r["id"] for r in data.rows] == ["s0", "s1"] and data.skipped_no_context == 1
    row = data.rows[1]
    expected = ContextSynthesis(target_words=80).prompt(seeds[1])
    assert row["messages"][:-1] == expected  # the stage's own prompt, asking for the human length
    assert "80 words" in row["messages"][-2]["content"]
    assert row["messages"][-1] == {"role": "assistant", "content": "Context: " + seeds[1].context}
    assert task.parse(row["messages"][-1]["content"]) == seeds[1].context  # the stage parses the reply back
    assert task.target_words == 2000  # the shared task is not changed


def test_excluded_seeds_leave_out_same_id_question_or_context() -> None:
    seeds = [_seed(i) for i in range(5)]
    same_question = Seed(id="x1", task="t", instruction="  where did SHIP 1 sail? ", answer="other")
    same_context = Seed(id="x2", task="t", instruction="Unrelated?", answer="b", context=seeds[2].context)
    same_id = Seed(id="s3", task="t", instruction="Else?", answer="c")
    data = writer_rows(seeds, ContextSynthesis(), [same_question, same_context, same_id])
    assert [r["id"] for r in data.rows] == ["s0", "s4"] and data.skipped_overlap == 3


def test_writer_data_command_writes_rows_and_honours_exclude(tmp_path: Path) -> None:
    pool = [{"id": s.id, "task": s.task, "instruction": s.instruction, "answer": s.answer, "context": s.context}
            for s in (_seed(i) for i in range(6))]
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    (tmp_path / "exp.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool[:2]))
    config = {"name": "w", "out_dir": str(tmp_path / "runs"),
              "seeds": {"source": "jsonl", "path": str(tmp_path / "pool.jsonl")}, "synth": {"target_words": 150}}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "writer.jsonl"
    result = CliRunner().invoke(app, ["writer-data", str(tmp_path / "w.yaml"), "--out", str(out),
                                      "--exclude", str(tmp_path / "exp.jsonl")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["s2", "s3", "s4", "s5"]
    assert "2 overlapping the excluded seeds" in result.output
    (tmp_path / "exp.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    result = CliRunner().invoke(app, ["writer-data", str(tmp_path / "w.yaml"), "--out", str(out),
                                      "--exclude", str(tmp_path / "exp.jsonl")])
    assert result.exit_code == 2 and "none of the 6 seeds" in result.output
