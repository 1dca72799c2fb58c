"""LongBench v1 and v2 through datasets.load_dataset on local folders laid out as the Hub repos are
(offline), LongBench v2's prompting and its result.py scores (hand-computed), and an eval run with
chain of thought against a real local OpenAI-protocol server.

The prompt files here are written by the test in our own words with LongBench v2's placeholders:
the real ones are read from the user's LongBench checkout, never shipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ctxsynth import config as cfg
from ctxsynth.errors import ConfigError, UserError
from ctxsynth.eval import longbench_v2 as v2
from ctxsynth.eval.hub import hub_spec
from ctxsynth.eval.job import EvalConfig, collect_items, run_eval
from ctxsynth.eval.longbench import load_longbench
from ctxsynth.testing.openai_server import OpenAIServer, Reply
from ctxsynth.tokenize import load_tokenizer

PROMPT = "Read.\n<text>\n$DOC$\n</text>\nQ: $Q$\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\nSay: The correct answer is (X)."
COT = PROMPT.replace("Say: The correct answer is (X).", "Think first:")
COT_ANS = PROMPT.replace("<text>\n$DOC$\n</text>", "").replace("Say:", "Your thoughts: $COT$\nSay:")
DIFFICULTY = ["easy", "hard", "hard", "easy", "hard", "hard"]
LENGTH = ["short", "short", "medium", "long", "long", "medium"]


def _v2_record(i: int, words: int = 30) -> dict[str, Any]:
    return {"_id": f"q{i}", "domain": "Single-Document QA", "sub_domain": "x", "difficulty": DIFFICULTY[i],
            "length": LENGTH[i], "question": f" Which colour is item {i}? ", "choice_A": " red ", "choice_B": "blue",
            "choice_C": "green", "choice_D": "black", "answer": "ABCD"[i % 4],
            "context": " " + " ".join(f"item{i} word{k}" for k in range(words)) + " "}


@pytest.fixture
def v2_folder(tmp_path: Path) -> Path:
    """The THUDM/LongBench-v2 repository's layout: one data.json (split train)."""
    folder = tmp_path / "LongBench-v2"
    folder.mkdir()
    (folder / "data.json").write_text(json.dumps([_v2_record(i) for i in range(6)]))
    return folder


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    folder = tmp_path / "checkout" / "prompts"
    folder.mkdir(parents=True)
    for name, text in (("0shot.txt", PROMPT), ("0shot_cot.txt", COT), ("0shot_cot_ans.txt", COT_ANS)):
        (folder / name).write_text(text)
    return folder


def test_v1_by_hub_spec_from_a_local_repo_layout(tmp_path: Path) -> None:
    """A folder laid out like a parquet/JSON conversion of THUDM/LongBench: one config per task."""
    repo = tmp_path / "LongBench"
    (repo / "data").mkdir(parents=True)
    rows = [{"input": f"Who {i}?", "context": f"Passage {i} text.", "answers": [f"a{i}"], "length": 40 + i,
             "dataset": "hotpotqa", "language": "en", "all_classes": None, "_id": f"h{i}"} for i in range(3)]
    (repo / "data" / "hotpotqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (repo / "README.md").write_text("---\nconfigs:\n- config_name: hotpotqa\n  data_files:\n"
                                    "  - split: test\n    path: data/hotpotqa.jsonl\n---\n")
    assert hub_spec("THUDM/LongBench", tmp_path) == "THUDM/LongBench"
    assert hub_spec(f"hf:{repo}", tmp_path) == str(repo) and hub_spec(str(repo / "data"), tmp_path) is None
    items = load_longbench([], tasks=["hotpotqa"], hub=[str(repo)])
    assert [i.id for i in items] == ["h0", "h1", "h2"] and items[0].task == "hotpotqa"
    assert "Passage 0 text." in items[0].prompt and items[0].answers == ["a0"]
    with pytest.raises(ConfigError, match="longbench_tasks"):
        load_longbench([], hub=[str(repo)])
    with pytest.raises(UserError, match="load_dataset"):
        load_longbench([], tasks=["qasper"], hub=[str(repo)])


def test_v2_prompt_and_cut_as_pred_py(v2_folder: Path, prompts: Path) -> None:
    from ctxsynth.eval.hub import hub_records

    records = hub_records(str(v2_folder), None, "train")
    hf = load_tokenizer("smollm2").hf
    items = v2.records_to_items(records, v2.load_prompts(prompts), hf, max_len=10_000)
    first = items[0]
    assert first.prompt.startswith("Read.\n<text>\nitem0 word0") and "Q: Which colour is item 0?\n(A) red\n" in first.prompt
    assert first.max_new_tokens == 128 and first.meta["truncated_tokens"] == 0 and first.answers == ["A"]
    cut = v2.records_to_items(records[:1], v2.load_prompts(prompts), hf, max_len=21)
    ids = hf.encode(v2.render(PROMPT, records[0]))
    assert cut[0].meta["truncated_tokens"] == len(ids) - 21
    assert cut[0].prompt == hf.decode(ids[:10] + ids[-11:], skip_special_tokens=True)  # 21 // 2 and ceil(21 / 2)


def test_answer_extraction_and_result_py_scores_by_hand() -> None:
    assert v2.extract_answer("**The correct answer is (C)**") == "C"
    assert v2.extract_answer("The correct answer is D because") == "D"
    assert v2.extract_answer("I pick (B)") is None
    preds = ["The correct answer is (A)", "The correct answer is (A)", "The correct answer is (C)",
             "no idea", "The correct answer is B", "The correct answer is (C)"]
    answers = ["A", "B", "C", "D", "A", "B"]
    rows = [{"id": f"q{i}", "metric": v2.METRIC, "prediction": p, "references": [a],
             "score": v2.choice_score(p, [a]),
             "meta": {"longbench_v2": "answer", "difficulty": DIFFICULTY[i], "length_class": LENGTH[i]}}
            for i, (p, a) in enumerate(zip(preds, answers, strict=True))]
    # right: q0 (easy, short), q2 (hard, medium). easy 1/2, hard 1/4, short 1/2, medium 1/2, long 0/2
    assert v2.summarize(rows) == {"overall": 33.3, "n": 6, "easy": 50.0, "n_easy": 2, "hard": 25.0, "n_hard": 4,
                                  "short": 50.0, "n_short": 2, "medium": 50.0, "n_medium": 2, "long": 0.0, "n_long": 2}
    # result.py's compensated switch: 0.25 for the reply without a letter (q3: easy, long)
    comp = v2.summarize(rows, compensated=True)
    assert comp is not None and comp["overall"] == round(100 * 2.25 / 6, 1) and comp["long"] == 12.5


def test_eval_config_runs_v2_with_chain_of_thought(v2_folder: Path, prompts: Path, tmp_path: Path) -> None:
    def responder(body: dict[str, Any]) -> Reply:
        prompt = body["messages"][-1]["content"]
        if prompt.rstrip().endswith("Think first:"):
            return Reply("  Item colours are listed.  ")
        assert "Your thoughts: Item colours are listed.\n" in prompt  # pred.py strips the reasoning
        return Reply("The correct answer is (A)")

    with OpenAIServer(responder) as server:
        config = cfg.from_dict(EvalConfig, {
            "name": "v2", "out_dir": str(tmp_path / "eval"), "longbench": [f"hf:{v2_folder}"],
            "longbench_v2_prompts": str(prompts), "longbench_v2_cot": True,
            "model": {"backend": "openai", "model": "m", "options": {"base_url": server.url, "max_retries": 0},
                      "tokenizer": "smollm2", "max_model_len": 4096}})
        summary = run_eval(config, base=tmp_path)
        assert server.hits == 12  # reasoning and answer prompt per question
    assert summary["longbench_v2"]["overall"] == round(100 * 2 / 6, 1)  # q0 and q4 have answer A
    lines = (tmp_path / "eval" / "v2" / "longbench_v2_pred.jsonl").read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["judge"] is True
    assert "LongBench v2" in (tmp_path / "eval" / "v2" / "scores.md").read_text()


def test_v2_needs_the_users_prompts(v2_folder: Path, tmp_path: Path) -> None:
    config = cfg.from_dict(EvalConfig, {"name": "v2", "longbench": [f"hf:{v2_folder}"],
                                        "model": {"backend": "fake", "model": "x", "tokenizer": "smollm2"}})
    with pytest.raises(ConfigError, match="longbench_v2_prompts"):
        collect_items(config, tmp_path)
    config.longbench_v2_prompts = str(tmp_path)
    with pytest.raises(UserError, match="0shot.txt"):
        collect_items(config, tmp_path)
