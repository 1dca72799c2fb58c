"""Metric functions against hand-computed cases (LongBench conventions)."""

from __future__ import annotations

import pytest

from ctxsynth.eval import metrics


def test_normalisation_drops_case_punctuation_articles_and_extra_spaces() -> None:
    assert metrics.normalize_answer("  The  Cat, an apple!  ") == "cat apple"


def test_qa_f1_hand_computed() -> None:
    # "cat sat" vs "cat sat down": 2 common, P = 1, R = 2/3 -> F1 = 0.8
    assert metrics.qa_f1("The cat sat.", "a cat sat down") == pytest.approx(0.8)
    assert metrics.qa_f1("dog", "cat") == 0.0
    assert metrics.best_qa_f1("Paris", ["London", "paris"]) == 1.0


def test_rouge_l_is_lcs_f_measure() -> None:
    # LCS of 6 tokens; P = 6/7, R = 6/6 -> F = 12/13
    assert metrics.rouge_l("the cat was found under the bed", "the cat was under the bed") == pytest.approx(12 / 13)
    assert metrics.rouge_l("", "anything") == 0.0


def test_classification_counts_named_labels_and_ignores_fragments_of_the_reference() -> None:
    classes = ["Entity", "Location", "Numeric value", "value"]
    assert metrics.classification_score("Location", "Location", classes) == 1.0
    assert metrics.classification_score("Entity or Location", "Location", classes) == 0.5
    assert metrics.classification_score("Numeric value", "Numeric value", classes) == 1.0  # "value" is a fragment
    assert metrics.classification_score("Entity", "Location", classes) == 0.0


def test_retrieval_and_count_share_of_correct_numbers() -> None:
    assert metrics.retrieval_score("Paragraph 3 and Paragraph 5", "Paragraph 3") == 0.5
    assert metrics.retrieval_score("Paragraph 13", "Paragraph 3") == 0.0
    assert metrics.retrieval_score("I cannot tell", "Paragraph 3") == 0.0
    assert metrics.count_score("There are 7 distinct paragraphs", "7") == 1.0
    assert metrics.count_score("7 or 8", "7") == 0.5


def test_code_sim_scores_first_code_line_with_difflib_ratio() -> None:
    assert metrics.first_code_line("```python\n# add one\nreturn x + 1\n```") == "return x + 1"
    assert metrics.code_sim("```python\nreturn x + 1\n```", "return x + 1") == 1.0
    assert metrics.code_sim("abcd", "abce") == pytest.approx(0.75)  # 3 matches: 2 * 3 / 8


def test_exact_substring_and_all_substring() -> None:
    assert metrics.exact_match("The Eiffel Tower.", ["eiffel tower"]) == 1.0
    assert metrics.exact_match("It is the Eiffel Tower", ["eiffel tower"]) == 0.0
    assert metrics.substring_match("It is the Eiffel Tower", ["eiffel tower"]) == 1.0
    assert metrics.all_substring("the numbers are 123 and 999", ["123", "456"]) == 0.5


def test_score_dispatches_by_name_and_rejects_unknown_names() -> None:
    assert metrics.score("classification", "Entity", ["Entity"], {"all_classes": ["Entity", "Location"]}) == 1.0
    assert metrics.score("qa_f1", "cat sat", ["cat sat down"]) == pytest.approx(0.8)
    with pytest.raises(KeyError, match="qa_f1"):
        metrics.score("qa_f2", "x", ["x"])


def test_chinese_metrics_hand_computed_over_jieba_words() -> None:
    """LongBench's Chinese scoring: jieba words, punctuation and spaces dropped.
    '小明硕士毕业于中国科学院计算所。' -> 小明 / 硕士 / 毕业 / 于 / 中国科学院 / 计算所 (6 words)."""
    assert metrics.zh_words("小明硕士毕业于中国科学院计算所。") == ["小明", "硕士", "毕业", "于", "中国科学院", "计算所"]
    assert metrics.normalize_zh_answer("《北京》， 2008年！") == "北京2008年"
    # 2 of the prediction's 2 words among the reference's 6: P 1, R 1/3, F1 0.5
    assert metrics.score("qa_f1_zh", "中国科学院计算所", ["小明硕士毕业于中国科学院计算所"]) == pytest.approx(0.5)
    assert metrics.score("qa_f1_zh", "计算所！", ["计算所"]) == 1.0
    # LCS 4 words (会议 讨论 了 预算) of 4 predicted and 7 reference words: F = 2 * 4/7 / (1 + 4/7) = 8/11
    assert metrics.score("rouge_l_zh", "会议讨论了预算", ["本次会议讨论了明年的预算"]) == pytest.approx(8 / 11)
    # the English scorer keeps only [a-z0-9]: it would score Chinese text 0
    assert metrics.score("rouge_l", "会议讨论了预算", ["本次会议讨论了明年的预算"]) == 0.0


def test_chinese_retrieval_reads_duanluo_labels() -> None:
    assert metrics.score("retrieval_zh", "答案是段落12", ["段落12"]) == 1.0
    assert metrics.score("retrieval_zh", "段落3或段落12", ["段落12"]) == 0.5
    assert metrics.score("retrieval_zh", "不知道", ["段落12"]) == 0.0
