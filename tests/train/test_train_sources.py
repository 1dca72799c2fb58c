"""`ctxsynth train` reads every ctxsynth export, and empty or too-long data is one clear error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
from export_factory import make_samples  # noqa: E402

from ctxsynth.export import export_samples  # noqa: E402
from ctxsynth.train.data import end_of_turn_id, tokenize_all  # noqa: E402
from ctxsynth.train.sources import TrainDataError, read_conversations  # noqa: E402

ALL = ["trl_messages", "trl_prompt_completion", "longalign", "llamafactory", "parquet"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports")
    export_samples(make_samples(), out, [*ALL, "context_free"], config_hash="c", tokenizer_name="smollm2")
    return out


@pytest.mark.parametrize("fmt", ALL)
def test_every_export_folder_reads_as_the_same_conversations(exported, fmt):
    expected = [s.messages for s in make_samples()]
    assert read_conversations([exported / fmt]) == expected
    data = next(p for p in (exported / fmt).iterdir() if p.name.startswith("data."))
    assert read_conversations([data], limit=3) == expected[:3]


def test_context_free_twin_reads_the_bare_instruction(exported):
    rows = read_conversations([exported / "context_free"])
    assert [r[0]["content"] for r in rows] == [s.meta["instruction"] for s in make_samples()]


def test_empty_missing_and_unknown_inputs_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(TrainDataError, match="no training rows in .*empty.jsonl"):
        read_conversations([empty])
    with pytest.raises(TrainDataError, match="training data not found"):
        read_conversations([tmp_path / "absent"])
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"text": "hello"}\n')
    with pytest.raises(TrainDataError, match=r"odd.jsonl:1: no 'messages'"):
        read_conversations([odd])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    with pytest.raises(TrainDataError, match="must end with an assistant answer"):
        read_conversations([bad])


def test_all_samples_too_long_names_the_length_that_fits(smol_tokenizer):
    rows = [s.messages for s in make_samples()]
    eot = end_of_turn_id(smol_tokenizer)
    kept, dropped = tokenize_all(rows, smol_tokenizer, eot, 4096)
    longest = max(len(s) for s in kept)
    with pytest.raises(TrainDataError, match=f"all 10 samples are longer than data.max_length=16 .* at least {longest}"):
        tokenize_all(rows, smol_tokenizer, eot, 16)
