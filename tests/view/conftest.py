"""A real run to look at (real stages, no model: the `human` task assembles each seed's own context
among real Wikipedia extracts), and a headless Chromium driven by Selenium.

The browser is the system's (Debian's `chromium` and `chromium-driver`, which `make setup` installs
in CI). Without it the browser tests skip with the reason, except under CI=true, where they fail."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ctxsynth.cli import app

SCRIPT = "<script>window.__pwned = 1; document.title = 'pwned';</script>"
MARKUP = '<img src=x onerror="window.__pwned = 2"> &amp; <b>bold?</b>'


def _seeds() -> list[dict]:
    rows = []
    for i in range(6):
        context = f"The harbour of Port Ilvar {i} was founded by fishermen in the year 1{i}40. " * 3
        if i == 0:
            context += f" {SCRIPT} {MARKUP}"
        rows.append({"id": f"q{i}", "instruction": f"Who founded the harbour of Port Ilvar {i}?",
                     "answer": "fishermen", "context": context, "task": "single_doc_qa"})
    rows.append({"id": "q-empty", "instruction": "Who?", "answer": "x", "context": "", "task": "single_doc_qa"})
    return rows


@pytest.fixture(scope="session")
def human_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/h: 7 seeds (1 rejected at seeds), 6 samples of 600 tokens, a trl_prompt_completion export."""
    root = tmp_path_factory.mktemp("view-run")
    seeds = root / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(r) + "\n" for r in _seeds()), encoding="utf-8")
    config = {"name": "h", "out_dir": str(root / "runs"), "stages": ["seeds", "synthesize", "assemble", "export", "report"],
              "seeds": {"source": "jsonl", "path": str(seeds), "on_error": "reject"},
              "llm": {"backend": "fake"}, "synth": {"task": "human"},
              "assemble": {"target_tokens": 600, "n_documents": 3, "distractors": "corpus:wiki", "corpus_chunk_words": 80},
              "export": {"formats": ["trl_prompt_completion"]}}
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(path), "--no-preflight"])
    assert result.exit_code == 0, result.output
    return root / "runs" / "h"


def browser_paths() -> tuple[str, str]:
    """The Chromium binary and its driver; skips (fails under CI=true) when either is missing."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, found in (("chromium", binary), ("chromedriver (chromium-driver)", driver)) if not found]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = f"no {', '.join(missing)}: `apt-get install chromium chromium-driver` (make setup does it in CI)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser test, but there is {reason}")
        pytest.skip(reason)
    assert binary and driver
    return binary, driver


@pytest.fixture(scope="session")
def browser() -> Iterator:
    binary, driver = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    chrome.set_page_load_timeout(60)
    yield chrome
    chrome.quit()
