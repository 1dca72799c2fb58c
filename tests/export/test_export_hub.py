"""Export folders follow the Hub conventions: load_dataset(folder) reads exactly the data, the card's
YAML header declares it, and the manifest and card say per format whether the trainer masks the prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from datasets import load_dataset
from export_factory import make_samples

from ctxsynth.export import CardInfo, export_samples
from ctxsynth.export.hub import card_header, push_export, size_category
from ctxsynth.export.training import CHAT_TEMPLATE_FILE, max_length_for

ALL = ["trl_messages", "trl_prompt_completion", "longalign", "llamafactory", "parquet", "context_free"]
CARD = CardInfo(license="cc-by-sa-4.0", seed_sources=["SQuAD v2.0 dev (CC BY-SA 4.0)"], generators=["m"],
                tokenizer="smollm2", pretty_name="demo")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hub")
    export_samples(make_samples(), out, ALL, config_hash="c", tokenizer_name="smollm2", card=CARD)
    return out


def _front_matter(path: Path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.mark.parametrize("fmt", ALL)
def test_load_dataset_on_the_folder_reads_the_data_only(exported, fmt):
    dataset = load_dataset(str(exported / fmt), split="train")
    assert len(dataset) == 10
    assert "format" not in dataset.column_names and "files" not in dataset.column_names  # not the manifest
    meta = _front_matter(exported / fmt / "README.md")
    assert meta["license"] == "cc-by-sa-4.0" and meta["language"] == ["en"] and meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data.parquet" if fmt == "parquet" else "data.jsonl"}]}]
    assert meta["dataset_info"][0]["splits"][0]["num_examples"] == 10


def test_manifest_says_which_formats_train_the_answer_only(exported):
    import json

    notes = {fmt: json.loads((exported / fmt / "manifest.json").read_text())["training"] for fmt in ALL}
    assert {f for f, n in notes.items() if n["answer_only_by_default"]} == {"trl_prompt_completion", "llamafactory",
                                                                          "longalign"}
    # the longest sample has 109 tokens: +16 slack, rounded up to 64
    assert notes["trl_prompt_completion"]["settings"] == {"max_length": 128}
    assert notes["llamafactory"]["settings"] == {"cutoff_len": 128}
    for fmt in ("trl_messages", "context_free", "parquet"):
        assert notes[fmt]["settings"] == {"assistant_only_loss": True, "max_length": 128,
                                          "chat_template_path": CHAT_TEMPLATE_FILE}
        assert "EVERY token" in notes[fmt]["warning"]
        assert (exported / fmt / CHAT_TEMPLATE_FILE).exists()
        assert "does NOT train the answer only by default" in (exported / fmt / "README.md").read_text()
    assert not (exported / "trl_prompt_completion" / CHAT_TEMPLATE_FILE).exists()


def test_other_tokenizers_get_no_smollm2_template(tmp_path):
    manifests = export_samples(make_samples(), tmp_path, ["trl_messages"], config_hash="c", tokenizer_name="tiktoken:x")
    assert "chat_template_path" not in manifests["trl_messages"]["training"]["settings"]
    assert not (tmp_path / "trl_messages" / CHAT_TEMPLATE_FILE).exists()
    assert "trl_prompt_completion" in manifests["trl_messages"]["training"]["warning"]


def test_header_and_helpers():
    assert [size_category(n) for n in (0, 999, 1000, 20_000)] == ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K"]
    assert max_length_for(109) == 128 and max_length_for(112) == 128 and max_length_for(113) == 192
    assert max_length_for(None) is None
    files = {"a": [{"path": "a/data.jsonl", "bytes": 10, "rows": 2}],
             "b": [{"path": "b/data.parquet", "bytes": 7, "rows": 3}]}
    meta = yaml.safe_load(card_header(CARD, 5, files).strip("-\n"))
    assert meta["configs"][0] == {"config_name": "a", "data_files": [{"split": "train", "path": "a/data.jsonl"}],
                                  "default": True}
    assert "default" not in meta["configs"][1]
    assert meta["dataset_info"][1] == {"config_name": "b", "download_size": 7,
                                       "splits": [{"name": "train", "num_bytes": 7, "num_examples": 3}]}


def test_two_runs_with_the_same_format_name_do_not_share_a_datasets_cache_entry(tmp_path):
    """datasets keys a local folder's cache by its README header: the declared sizes keep runs apart."""
    samples = make_samples()
    for run, n in (("a", 4), ("b", 6)):
        export_samples(samples[:n], tmp_path / run / "export", ["trl_messages"], config_hash="c", tokenizer_name="smollm2")
    assert len(load_dataset(str(tmp_path / "a" / "export" / "trl_messages"), split="train")) == 4
    assert len(load_dataset(str(tmp_path / "b" / "export" / "trl_messages"), split="train")) == 6


def test_push_export_goes_through_datasets_up_to_the_network(exported, monkeypatch):
    """Everything before the network: repo creation, the card upload, one push per format with its rows."""
    import datasets
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo",
                        lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw["private"])))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_file",
                        lambda self, **kw: calls.append(("upload", kw["path_in_repo"], kw["path_or_fileobj"][:4])))
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda self, repo_id, **kw: calls.append(
        ("push", repo_id, kw["config_name"], kw["private"], len(self), tuple(sorted(self.column_names)))))
    pushed = push_export(exported, "me/demo", private=True, card="---\nx\n")
    assert pushed == sorted(ALL)
    assert calls[:2] == [("create_repo", "me/demo", True), ("upload", "README.md", b"---\n")]
    pushes = {c[2]: c for c in calls[2:]}
    assert set(pushes) == set(ALL) and all(c[1] == "me/demo" and c[3] is True and c[4] == 10 for c in pushes.values())
    assert pushes["trl_prompt_completion"][5] == ("completion", "id", "prompt")


def test_push_export_needs_a_finished_export(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished export folder"):
        push_export(tmp_path, "me/demo", private=True)
