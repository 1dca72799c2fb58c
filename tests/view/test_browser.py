"""The page in a real browser (headless system Chromium): counts match the run directory, a sample
opens with its gold document highlighted and its support span marked, a context holding <script>
is shown as text and never run, a rejected record shows its reason, and the page is as usable when
served on 127.0.0.1 as from disk. Saves a screenshot (VIEW_SCREENSHOT=path keeps it)."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest

from ctxsynth.errors import InputError
from ctxsynth.io import read_shards
from ctxsynth.view import PageServer, build_view

SCRIPT = "<script>window.__pwned = 1; document.title = 'pwned';</script>"  # in one seed's context (conftest)


def _wait(chrome, condition, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(chrome, timeout).until(condition)


def _open(chrome, url: str) -> None:
    chrome.get(url)
    _wait(chrome, lambda c: c.execute_script("return document.body.dataset.ready"))
    assert chrome.execute_script("return document.body.dataset.ready") == "1", chrome.get_log("browser")


def _stage_counts(chrome) -> dict[str, tuple[int, int]]:
    from selenium.webdriver.common.by import By

    rows = chrome.find_elements(By.CSS_SELECTOR, "#stage-counts tr")[1:]
    return {c[0]: (int(c[1]), int(c[2])) for c in ([td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows)}


def _expected_counts(run: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for stage, folder in (("seeds", "seeds"), ("synthesize", "synth"), ("assemble", "assemble")):
        out[stage] = (len(list(read_shards(run / folder))), len(list(read_shards(run / folder / "rejected"))))
    rows = (run / "export" / "trl_prompt_completion" / "data.jsonl").read_text().splitlines()
    out["export"] = (len(rows), 0)
    return out


def _samples(run: Path) -> dict[str, dict]:
    return {s["id"]: s for s in read_shards(run / "assemble")}


def test_the_page_shows_the_run_as_recorded_and_runs_none_of_its_text(human_run: Path, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    page = build_view(human_run)
    _open(browser, page.resolve().as_uri())
    assert _stage_counts(browser) == _expected_counts(human_run) == {
        "seeds": (6, 1), "synthesize": (6, 0), "assemble": (6, 0), "export": (6, 0)}
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=samples]").click()
    assert browser.find_element(By.ID, "count").text == "7 of 7 seeds"
    items = browser.find_elements(By.CSS_SELECTOR, "#list li")
    assert len(items) == 7
    browser.find_element(By.CSS_SELECTOR, "#list li[data-id=q0]").click()
    gold = _wait(browser, lambda c: c.find_elements(By.CSS_SELECTOR, "#context .seg-gold"))[0]
    sample = _samples(human_run)["q0"]
    user = sample["messages"][0]["content"]
    start, end = sample["gold_char_span"]
    assert gold.get_attribute("textContent") == user[start:end]  # the highlight is exactly the gold document
    assert gold.value_of_css_property("background-color") != browser.find_element(
        By.CSS_SELECTOR, "#context .seg-distractor").value_of_css_property("background-color")
    assert browser.find_element(By.ID, "context").get_attribute("textContent") == user  # labels are drawn, not text
    labels = [e.get_attribute("data-label") for e in browser.find_elements(By.CSS_SELECTOR, "#context .seg-distractor")]
    assert labels and all("corpus wiki" in label for label in labels) and len(labels) == sample["n_documents"] - 1
    assert browser.find_element(By.CSS_SELECTOR, "#context mark.support").text.lower() == "fishermen"
    # the <script> of the context is text on the page and never ran; nor did the markup's handlers
    assert SCRIPT in gold.get_attribute("textContent")
    assert browser.execute_script("return [window.__pwned === undefined, document.title]") == [True, "ctxsynth · h"]
    assert browser.find_elements(By.CSS_SELECTOR, "#context script, #context img, #context b") == []
    token_line = browser.find_element(By.ID, "token-line").text
    assert token_line.startswith(f"{sample['tokens']['total']} tokens of a 600 budget")
    row = browser.find_element(By.ID, "export-row")
    assert "masked: no loss" in row.text and "trained: the loss is on these tokens" in row.text and "fishermen" in row.text
    shot = Path(os.environ.get("VIEW_SCREENSHOT") or tmp_path / "view.png")
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    # a rejected record: its reason, found through the reason filter
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "f-reason")).select_by_value("empty_field")
    assert browser.find_element(By.ID, "count").text == "1 of 7 seeds"
    browser.find_element(By.CSS_SELECTOR, "#list li[data-id=q-empty]").click()
    _wait(browser, lambda c: "empty_field" in c.find_element(By.ID, "detail").text)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_the_served_page_is_the_same_page(human_run: Path, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    page = build_view(human_run, tmp_path / "site" / "run.html")
    assert (tmp_path / "site" / "run_files" / "data" / "index.js").is_file()
    with PageServer(page.parent) as server:
        assert server.url("run.html").startswith("http://127.0.0.1:")
        with pytest.raises(InputError, match="cannot serve on 127.0.0.1"):
            PageServer(page.parent, server.port)  # the port is taken: one clear line, not a traceback
        _open(browser, server.url(page.name))
        assert _stage_counts(browser)["assemble"] == (6, 0)
        browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=samples]").click()
        browser.find_element(By.CSS_SELECTOR, "#list li[data-id=q3]").click()
        gold = _wait(browser, lambda c: c.find_elements(By.CSS_SELECTOR, "#context .seg-gold"))[0]
        start, end = _samples(human_run)["q3"]["gold_char_span"]
        assert gold.get_attribute("textContent") == _samples(human_run)["q3"]["messages"][0]["content"][start:end]
        links = {a.text: a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#links a")}
        assert set(links) >= {"dataset card", "summary"}


def _big_run(root: Path, n: int) -> Path:
    """A run directory of n assembled samples (short ones: the page's cost is in their number)."""
    run = root / "big"
    (run / "assemble").mkdir(parents=True)
    (run / "config.yaml").write_text("name: big\nassemble: {target_tokens: 64}\n")
    head = "Read the documents below and answer the question. Reply with the answer only.\n\n"
    samples = []
    for i in range(n):
        docs = [f"Distractor {i} a.", f"Gold {i}: the key is k{i}.", f"Distractor {i} b."]
        user = head + "\n\n".join(docs) + f"\n\nQuestion: what is key {i}?"
        start = user.index(docs[1])
        samples.append({"id": f"s{i}", "seed_id": f"s{i}", "task": "single_doc_qa", "template": "single_doc_qa",
                        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": f"k{i}"}],
                        "answer": [f"k{i}"], "gold_index": 1, "gold_indices": [1], "gold_char_span": [start, start + len(docs[1])],
                        "n_documents": 3, "distractor_ids": [f"corpus:wiki:{i}", f"corpus:wiki:{i + 1}"],
                        "distractor_strategy": "corpus:wiki", "separator": "blank_line", "gold_depth": (i % 100) / 100,
                        "tokens": {"total": 40 + i % 24, "budget": 64}, "meta": {"instruction": f"what is key {i}?"}})
    with gzip.open(run / "assemble" / "shard-00000.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(s) + "\n" for s in samples)
    return run


def test_a_hundred_thousand_samples_open_a_page_not_a_giant_dom(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    n = 100_000
    run = _big_run(tmp_path, n)
    started = time.perf_counter()
    page = build_view(run)
    built = time.perf_counter() - started
    started = time.perf_counter()
    _open(browser, page.resolve().as_uri())
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=samples]").click()
    assert browser.find_element(By.ID, "count").text == "100,000 of 100,000 seeds"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#list li")) == 100  # one page of the list in the DOM
    assert browser.find_element(By.ID, "page").text == "page 1 of 1,000"
    browser.find_element(By.ID, "search").send_keys("key 99999?")
    _wait(browser, lambda c: c.find_element(By.ID, "count").text == "1 of 100,000 seeds")
    browser.find_element(By.CSS_SELECTOR, "#list li[data-id=s99999]").click()
    gold = _wait(browser, lambda c: c.find_elements(By.CSS_SELECTOR, "#context .seg-gold"))[0]
    assert gold.get_attribute("textContent") == "Gold 99999: the key is k99999."
    opened = time.perf_counter() - started
    chunks = len(list((page.parent / "index_files" / "data").glob("sample-*.js")))
    assert chunks == n // 200
    print(f"100k samples: build {built:.1f} s, open + search + one sample {opened:.1f} s")
    assert opened < 60  # generous for a loaded 2-core CI box; a quiet one takes a few seconds


def test_the_view_verb_names_the_page(human_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ctxsynth.cli import app

    out = tmp_path / "page.html"
    result = CliRunner().invoke(app, ["view", str(human_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"page: {out}" in result.output.replace("\n", "") and out.is_file()
    bad = CliRunner().invoke(app, ["view", str(tmp_path)])
    assert bad.exit_code == 2 and "not a run directory" in bad.output
    wrong = CliRunner().invoke(app, ["view", str(human_run), "--out", str(tmp_path / "x.txt")])
    assert wrong.exit_code == 2 and "one .html file" in wrong.output
