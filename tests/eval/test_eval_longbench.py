"""LongBench v1 loading, template overrides, paper categories and LongBench-E buckets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctxsynth.eval import scores
from ctxsynth.eval.longbench import PAPER_TASKS, load_longbench, load_task_specs


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _record(dataset: str, i: int, length: int, **extra: object) -> dict:
    return {"input": f"Question {i}?", "context": f"Context of {dataset} {i}.", "answers": [f"answer {i}"],
            "all_classes": None, "length": length, "dataset": dataset, "_id": f"{dataset}-{i}", **extra}


def test_specs_cover_the_paper_tasks_with_its_output_budgets() -> None:
    specs = load_task_specs()
    assert set(PAPER_TASKS) <= set(specs)
    budgets = {t: specs[t].max_new_tokens for t in PAPER_TASKS}
    assert budgets == {"narrativeqa": 128, "qasper": 128, "hotpotqa": 32, "2wikimqa": 32, "musique": 32,
                       "gov_report": 512, "qmsum": 512, "multi_news": 512}
    assert {specs[t].metric for t in ("gov_report", "qmsum", "multi_news")} == {"rouge_l"}
    assert all("{context}" in s.template for s in specs.values())


def test_loader_builds_items_from_a_longbench_file(tmp_path: Path) -> None:
    _write(tmp_path / "hotpotqa.jsonl", [_record("hotpotqa", i, 1000 * (i + 1)) for i in range(3)])
    _write(tmp_path / "trec_e.jsonl", [_record("trec_e", 0, 500, answers=["Location"],
                                               all_classes=["Location", "Entity"])])
    items = load_longbench([tmp_path])
    assert [i.id for i in items] == ["hotpotqa-0", "hotpotqa-1", "hotpotqa-2", "trec_e-0"]
    hp = items[0]
    assert hp.task == "hotpotqa" and hp.metric == "qa_f1" and hp.max_new_tokens == 32
    assert "Context of hotpotqa 0." in hp.prompt and "Question 0?" in hp.prompt
    assert hp.answers == ["answer 0"] and hp.meta["length"] == 1000 and hp.meta["category"] == "multi-doc"
    trec = items[3]
    assert trec.task == "trec" and trec.meta["all_classes"] == ["Location", "Entity"] and trec.meta["first_line"]
    assert len(load_longbench([tmp_path / "hotpotqa.jsonl"], limit=2)) == 2
    assert [i.task for i in load_longbench([tmp_path], tasks=["trec"])] == ["trec"]


def test_user_template_file_overrides_a_task(tmp_path: Path) -> None:
    _write(tmp_path / "qasper.jsonl", [_record("qasper", 0, 100)])
    override = tmp_path / "templates.yaml"
    override.write_text("qasper: 'DOC={context} Q={input}'\nmytask:\n  template: '{context}'\n  metric: qa_f1\n"
                        "  max_new_tokens: 7\n", encoding="utf-8")
    items = load_longbench([tmp_path / "qasper.jsonl"], templates=override)
    assert items[0].prompt == "DOC=Context of qasper 0. Q=Question 0?" and items[0].max_new_tokens == 128
    assert load_task_specs(override)["mytask"].max_new_tokens == 7
    override.write_text("qasper:\n  template: 'no placeholder'\n", encoding="utf-8")
    with pytest.raises(ValueError, match="context"):
        load_task_specs(override)


def test_unknown_dataset_names_the_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "x.jsonl", [_record("nosuchtask", 0, 10)])
    with pytest.raises(ValueError, match=r"x.jsonl:1"):
        load_longbench([tmp_path / "x.jsonl"])


def _row(task: str, score: float, length: int, category: str) -> dict:
    return {"task": task, "metric": "qa_f1", "score": score, "meta": {"length": length, "category": category}}


def test_summary_has_paper_categories_mean_and_length_buckets() -> None:
    rows = [_row("narrativeqa", 1.0, 3000, "single-doc"), _row("narrativeqa", 0.0, 9000, "single-doc"),
            _row("qasper", 0.2, 5000, "single-doc"), _row("hotpotqa", 0.6, 100, "multi-doc"),
            _row("gov_report", 0.3, 7999, "summarization")]
    summary = scores.summarize(rows)
    assert summary["tasks"]["narrativeqa"] == {"score": 50.0, "n": 2}
    paper = summary["paper"]
    assert paper["single-doc"] == 35.0 and paper["multi-doc"] == 60.0 and paper["summarization"] == 30.0
    assert paper["mean"] == pytest.approx((50 + 20 + 60 + 30) / 4) and not paper["complete"]
    assert summary["length_buckets"]["narrativeqa"] == {"0-4k": 100.0, "8k+": 0.0}
    assert summary["length_buckets"]["gov_report"] == {"4-8k": 30.0}


def test_chinese_tasks_load_with_chinese_templates_and_metrics(tmp_path: Path) -> None:
    """The five Chinese LongBench v1 tasks have templates (with {context}), LongBench's output
    budgets, metrics over jieba words, and score end to end from a record."""
    from ctxsynth.eval.metrics import score

    specs = load_task_specs()
    zh = {"multifieldqa_zh": ("qa_f1_zh", 64), "dureader": ("rouge_l_zh", 128), "vcsum": ("rouge_l_zh", 512),
          "lsht": ("classification", 64), "passage_retrieval_zh": ("retrieval_zh", 32)}
    assert {t: (specs[t].metric, specs[t].max_new_tokens) for t in zh} == zh
    record = {"input": "小明毕业于哪里？", "context": "小明硕士毕业于中国科学院计算所。", "answers": ["中国科学院计算所"],
              "all_classes": None, "length": 20, "dataset": "multifieldqa_zh", "_id": "zh-0"}
    [item] = load_longbench([_write(tmp_path / "multifieldqa_zh.jsonl", [record])])
    assert "小明硕士毕业于中国科学院计算所。" in item.prompt and "问题：小明毕业于哪里？" in item.prompt
    # 他 / 毕业 / 于 / 中国科学院 / 计算所 against 中国科学院 / 计算所: P 2/5, R 1, F1 = 0.8 / 1.4
    assert score(item.metric, "他毕业于中国科学院计算所。", item.answers, item.meta) == pytest.approx(0.8 / 1.4)
    assert item.meta["category"] == "single-doc (zh)"  # English category means stay English-only
