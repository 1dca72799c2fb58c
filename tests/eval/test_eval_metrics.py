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


def _f(p: float, r: float) -> float:
    """The `rouge` package's F: 2PR / (P + R + 1e-8)."""
    return 2 * p * r / (p + r + 1e-8)


def test_rouge_l_counts_distinct_words_as_the_rouge_package_does() -> None:
    # distinct words: prediction {the cat was found under bed} 6, reference {the cat was under bed} 5;
    # the LCS "the cat was under the bed" has 5 distinct words: P 5/6, R 5/5 (rouge-score: 12/13)
    assert metrics.rouge_l("the cat was found under the bed", "the cat was under the bed") == pytest.approx(_f(5 / 6, 1))
    # a repeated word counts once: P 1/1, R 1/2 -> 2/3 (rouge-score: P 1/3 -> 0.4)
    assert metrics.rouge_l("the the the", "the cat") == pytest.approx(_f(1, 1 / 2))


def test_rouge_l_keeps_case_and_punctuation() -> None:
    # "The" != "the": LCS {cat sat}, P = R = 2/3 (rouge-score lower-cases: 1.0)
    assert metrics.rouge_l("The cat sat", "the cat sat") == pytest.approx(_f(2 / 3, 2 / 3))
    # "sat," != "sat": P = R = 1/2
    assert metrics.rouge_l("cat sat,", "cat sat") == pytest.approx(_f(1 / 2, 1 / 2))


def test_rouge_l_splits_sentences_on_every_full_stop() -> None:
    # "c. a b" is two sentences; the union LCS of the reference with "c" and with "a b" is {a b c}:
    # P = R = 1 (as one sentence "c a b" vs "a b c" the LCS has 2 words: 2/3)
    assert metrics.rouge_l("c. a b", "a b c") == pytest.approx(_f(1, 1))
    assert metrics.rouge_l("c a b", "a b c") == pytest.approx(_f(2 / 3, 2 / 3))


def test_rouge_l_failures_score_zero_like_longbench() -> None:
    assert metrics.rouge_l("", "anything") == 0.0  # empty hypothesis: the package raises
    assert metrics.rouge_l("...", "anything") == 0.0  # only full stops: no sentence left
    # the package's LCS back-trace recurses once per word: 1200 equal words overflow Python's default
    # recursion limit (1000), which LongBench's scorer turns into 0; 900 words still score 1
    assert metrics.rouge_l("w " * 900, "w " * 900) == pytest.approx(_f(1, 1))
    assert metrics.rouge_l("w " * 1200, "w " * 1200) == 0.0


def test_classification_counts_named_labels_and_ignores_fragments_of_the_reference() -> None:
    classes = ["Entity", "Location", "Numeric value", "value"]
    assert metrics.classification_score("Location", "Location", classes) == 1.0
    assert metrics.classification_score("Entity or Location", "Location", classes) == 0.5
    assert metrics.classification_score("Numeric value", "Numeric value", classes) == 1.0  # "value" is a fragment
    assert metrics.classification_score("Entity", "Location", classes) == 0.0


def test_classification_reproduces_longbench_removal_while_iterating() -> None:
    """LongBench removes fragments from the list it loops over, so the one after each removal is
    skipped: found [a, ab, abc, abcd] -> "a" removed, "ab" skipped, "abc" removed -> [ab, abcd] -> 1/2.
    A clean removal would leave [abcd] and score 1."""
    assert metrics.classification_score("abcd", "abcd", ["a", "ab", "abc", "abcd"]) == 0.5
    # TREC-like labels: "Numeric value" and "value" are both fragments of "Numeric value, distance"
    # only when adjacent does one survive: [Numeric value, value, Numeric value, distance] -> the
    # first is removed, "value" is skipped and survives -> 1/2
    trec = ["Numeric value", "value", "Numeric value, distance"]
    assert metrics.classification_score("Numeric value, distance", "Numeric value, distance", trec) == 0.5
    # with a non-fragment label between them both fragments are removed: 1/1
    trec2 = ["Numeric value", "Numeric value, distance", "value"]
    assert metrics.classification_score("Numeric value, distance", "Numeric value, distance", trec2) == 1.0


def test_retrieval_and_count_share_of_correct_numbers() -> None:
    assert metrics.retrieval_score("Paragraph 3 and Paragraph 5", "Paragraph 3") == 0.5
    assert metrics.retrieval_score("Paragraph 13", "Paragraph 3") == 0.0
    assert metrics.retrieval_score("I cannot tell", "Paragraph 3") == 0.0
    assert metrics.count_score("There are 7 distinct paragraphs", "7") == 1.0
    assert metrics.count_score("7 or 8", "7") == 0.5


def test_code_sim_scores_first_code_line_with_fuzzywuzzy_ratio() -> None:
    assert metrics.first_code_line("```python\n# add one\nreturn x + 1\n```") == "return x + 1"
    assert metrics.code_sim("```python\nreturn x + 1\n```", "return x + 1") == 1.0
    assert metrics.code_sim("abcd", "abce") == 0.75  # 3 matches: 2 * 3 / 8
    # whole percent, Python rounding: 2 * 1 / 16 = 12.5% -> 12
    assert metrics.code_sim("abcdefgh", "hgfedcba") == 0.12
    # difflib's matcher, as fuzzywuzzy without python-Levenshtein (LongBench's requirements):
    # "ac a" vs "cca" matches 1 character: 2 * 1 / 7 = 28.6% -> 29 (Levenshtein's ratio: 57)
    assert metrics.code_sim("ac a", "cca") == 0.29
    # fuzzywuzzy checks equality before emptiness: no code line and an empty reference score 1
    assert metrics.code_sim("# only a comment", "") == 1.0
    assert metrics.code_sim("# only a comment", "x = 1") == 0.0


def test_code_sim_equals_fuzzywuzzy_pure_python_ratio() -> None:
    import difflib
    import random
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fuzzywuzzy import fuzz
    if fuzz.SequenceMatcher is not difflib.SequenceMatcher:
        pytest.skip("python-Levenshtein is installed: fuzzywuzzy's ratio is not LongBench's here")
    rng = random.Random(0)
    for _ in range(500):
        a = "".join(rng.choice("ab c()") for _ in range(rng.randint(0, 14)))
        b = "".join(rng.choice("ab c()") for _ in range(rng.randint(0, 14)))
        assert metrics.code_sim(a, b) == fuzz.ratio(a, b) / 100, (a, b)


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
    # LongBench's punctuation list has the closing "》" but not the opening "《" nor "·"
    assert metrics.normalize_zh_answer("《北京》， 2008年！") == "《北京2008年"
    assert metrics.score("qa_f1_zh", "·", ["·"]) == 1.0
    # 2 of the prediction's 2 words among the reference's 6: P 1, R 1/3, F1 0.5
    assert metrics.score("qa_f1_zh", "中国科学院计算所", ["小明硕士毕业于中国科学院计算所"]) == pytest.approx(0.5)
    assert metrics.score("qa_f1_zh", "计算所！", ["计算所"]) == 1.0
    # LCS 4 words (会议 讨论 了 预算) of 4 predicted and 7 reference words: F = 2 * 4/7 / (1 + 4/7) = 8/11
    assert metrics.score("rouge_l_zh", "会议讨论了预算", ["本次会议讨论了明年的预算"]) == pytest.approx(8 / 11)
    # rouge_zh keeps punctuation as a word: {计算所 ！} vs {计算所}: P 1/2, R 1 -> 2/3 (qa_f1_zh: 1)
    assert metrics.score("rouge_l_zh", "计算所！", ["计算所"]) == pytest.approx(_f(1 / 2, 1))
    # the English scorer splits on spaces only: an unsegmented Chinese text is one word, so 0
    assert metrics.score("rouge_l", "会议讨论了预算", ["本次会议讨论了明年的预算"]) == 0.0


def test_chinese_retrieval_reads_duanluo_labels() -> None:
    assert metrics.score("retrieval_zh", "答案是段落12", ["段落12"]) == 1.0
    assert metrics.score("retrieval_zh", "段落3或段落12", ["段落12"]) == 0.5
    assert metrics.score("retrieval_zh", "不知道", ["段落12"]) == 0.0


def test_normalize_answer_drops_exactly_ascii_punctuation() -> None:
    """str.translate deletes the same characters as the per-character filter it replaced."""
    text = "Dr. Müller's «café» — 3.5% (approx.)! L'été; an A-team"
    assert metrics.normalize_answer(text) == "dr müllers «café» — 35 approx lété ateam"
