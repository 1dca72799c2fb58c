"""Seeds from a Hub dataset id through datasets.load_dataset: a local dataset folder round trip, and
one clear line (no traceback, exit 2) when the Hub cannot be reached and nothing is cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctxsynth.seeds import SeedError, SeedsConfig, read_seeds

pytest.importorskip("datasets")
ROWS = [{"qid": f"h{i}", "question": f"Question {i}?", "answers": {"text": [f"answer {i}"]}} for i in range(3)]
MAPPING = {"id": "qid", "instruction": "question", "answer": "answers.text"}


def _dataset_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my_dataset" / "data"
    folder.mkdir(parents=True)
    for split, rows in (("train", ROWS[:2]), ("validation", ROWS[2:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder.parent


def test_hub_source_reads_what_load_dataset_reads(tmp_path: Path) -> None:
    folder = _dataset_folder(tmp_path)
    seeds = list(read_seeds(SeedsConfig(source="hub", path="my_dataset", fields=MAPPING), base_dir=tmp_path))
    assert [(s.id, s.instruction, s.answer) for s in seeds] == [("h0", "Question 0?", ["answer 0"]),
                                                              ("h1", "Question 1?", ["answer 1"])]
    seeds = list(read_seeds(SeedsConfig(source="hub", path=str(folder), split="validation", fields=MAPPING)))
    assert [s.id for s in seeds] == ["h2"]
    with pytest.raises(SeedError, match="seeds.split / seeds.subset"):
        list(read_seeds(SeedsConfig(source="hub", path=str(folder), split="nope", fields=MAPPING)))


def test_hub_source_options_are_checked() -> None:
    with pytest.raises(SeedError, match="seeds.path is required"):
        SeedsConfig(source="hub")
    with pytest.raises(SeedError, match="subset applies to source 'hub' only"):
        SeedsConfig(source="jsonl", path="x.jsonl", subset="en")


def test_offline_hub_id_is_one_line_with_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("name: hub\nstages: [seeds]\nseeds: {source: hub, path: ctxsynth-test/not-cached-anywhere}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache"),
           "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-m", "ctxsynth.cli", "seeds", str(config)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "cannot reach the Hugging Face Hub for 'ctxsynth-test/not-cached-anywhere'" in " ".join(proc.stderr.split())
    assert "hf_disk" in proc.stderr
