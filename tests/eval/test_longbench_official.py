"""Official LongBench mode: the user's config files, pred.py's truncation, chat and BOS rules.

The config files here are stand-ins in LongBench's layout with our own prompt wording (LongBench's
text is never shipped). Set LONGBENCH_CONFIG_DIR to a LongBench checkout's config folder to also
load the real files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ctxsynth.errors import UserError
from ctxsynth.eval.longbench import load_longbench, load_task_specs
from ctxsynth.eval.longbench_official import TASK_METRICS, load_official_specs, truncate_middle
from ctxsynth.eval.longbench_score import score_dir
from ctxsynth.eval.runner import evaluate, prediction_row
from ctxsynth.eval.truncation import fit_prompt
from ctxsynth.llm import BACKENDS
from ctxsynth.llm.base import ChatRequest, ChatResult, SamplingParams
from ctxsynth.testing.openai_server import OpenAIServer, Reply

PROMPTS = {  # our own words, LongBench's placeholders
    "hotpotqa": "Passages:\n{context}\nUsing them, reply in a few words.\nQ: {input}\nA:",
    "trec": "Give the type of the last question.\n{context}\n{input}",
    "passage_count": "How many distinct passages are there?\n{context}\nCount:",
}
MAXLEN = {"hotpotqa": 32, "trec": 64, "passage_count": 32}


@pytest.fixture()
def config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "LongBench" / "config"
    folder.mkdir(parents=True)
    (folder / "dataset2prompt.json").write_text(json.dumps(PROMPTS, indent=4))
    (folder / "dataset2maxlen.json").write_text(json.dumps(MAXLEN, indent=4))
    return folder


def _records(folder: Path, task: str, n: int, words: int = 40) -> Path:
    path = folder / f"{task}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            context = " ".join(f"word{i}x{k}" for k in range(words))
            answers = ["Location"] if task == "trec" else [f"answer {i}"]
            f.write(json.dumps({"input": f"question {i}?", "context": context, "answers": answers,
                                "length": words, "dataset": task, "language": "en",
                                "all_classes": ["Location", "Entity"] if task == "trec" else None,
                                "_id": f"{task}-{i}"}) + "\n")
    return path


def test_both_official_config_files_load(config_dir: Path) -> None:
    specs = load_official_specs(config_dir)
    assert set(specs) == set(PROMPTS)
    hp, trec, count = specs["hotpotqa"], specs["trec"], specs["passage_count"]
    assert (hp.template, hp.max_new_tokens, hp.metric, hp.chat, hp.first_line) == (PROMPTS["hotpotqa"], 32, "qa_f1", True, False)
    assert (trec.metric, trec.chat, trec.first_line, trec.max_new_tokens) == ("classification", False, True, 64)
    assert (count.metric, count.chat, count.first_line) == ("count", True, False)
    assert all(s.prompting == "official" for s in specs.values())


@pytest.mark.skipif(not os.environ.get("LONGBENCH_CONFIG_DIR"), reason="LONGBENCH_CONFIG_DIR not set")
def test_real_longbench_config_files_load() -> None:
    specs = load_official_specs(Path(os.environ["LONGBENCH_CONFIG_DIR"]))
    assert set(specs) == set(TASK_METRICS)
    assert sorted(n for n, s in specs.items() if not s.chat) == ["lcc", "lsht", "repobench-p", "samsum", "trec", "triviaqa"]


def test_dataset2maxlen_as_a_template_override_no_longer_crashes(config_dir: Path) -> None:
    specs = load_task_specs(config_dir / "dataset2maxlen.json")
    ours = load_task_specs()
    assert specs["hotpotqa"].max_new_tokens == 32 and specs["hotpotqa"].template == ours["hotpotqa"].template
    specs = load_task_specs(config_dir / "dataset2prompt.json")
    assert specs["trec"].template == PROMPTS["trec"] and specs["trec"].max_new_tokens == ours["trec"].max_new_tokens


def test_bad_config_files_are_named(config_dir: Path) -> None:
    (config_dir / "dataset2maxlen.json").write_text('{"hotpotqa": "32"}')
    with pytest.raises(UserError, match=r"dataset2maxlen.json: task 'hotpotqa': expected a number of new tokens"):
        load_official_specs(config_dir)
    with pytest.raises(UserError, match="no such file"):
        load_official_specs(config_dir.parent)


def _bos_tokenizer() -> Any:
    """A word-level tokenizer that adds a BOS like Llama's: '<s> a b ...'."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<s>", "</s>", "<unk>", *"abcdefgh"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_middle_truncation_counts_bos_and_decodes_each_half() -> None:
    """'a b c d e f g h' is <s> + 8 words = 9 tokens; max_length 4 keeps int(4/2) = 2 tokens per
    side: [<s>, a] -> "a" and [g, h] -> "g h", joined without a separator."""
    hf = _bos_tokenizer()
    cut = truncate_middle(hf, "a b c d e f g h", 4)
    assert (cut.prompt, cut.prompt_tokens, cut.truncated_tokens) == ("ag h", 4, 5)
    assert truncate_middle(hf, "a b c", 4).prompt == "a b c"  # 4 tokens with the BOS: fits, not cut


def test_official_truncation_reserves_nothing_for_the_output() -> None:
    from ctxsynth.tokenize import load_tokenizer

    tok = load_tokenizer("smollm2")
    prompt = " ".join(["token"] * 100)
    n = len(tok.hf(prompt)["input_ids"])
    official = truncate_middle(tok.hf, prompt, n)  # fits exactly: nothing cut, whatever the output length
    assert official.truncated_tokens == 0 and official.prompt == prompt
    ours = fit_prompt(prompt, tok, max_model_len=n, max_new_tokens=32)  # ours keeps room for 32 new tokens
    assert ours.truncated_tokens > 0


def test_plain_text_requests_get_the_tokenizers_bos() -> None:
    """Official mode sends the no-chat tasks as plain text tokenized with special tokens (BOS)."""
    backend = BACKENDS.get("transformers").__new__(BACKENDS.get("transformers"))
    backend._tokenizer, backend.max_input_tokens = _bos_tokenizer(), 100
    params = SamplingParams(max_tokens=4)
    assert backend._encode(ChatRequest([{"role": "raw", "content": "a b"}], params)) == [0, 3, 4]
    # a chat message of a model without a chat template: joined text, no special tokens added
    assert backend._encode(ChatRequest([{"role": "user", "content": "a b"}], params)) == [3, 4]


def test_first_line_scoring_for_the_few_shot_tasks(config_dir: Path, tmp_path: Path) -> None:
    item = load_longbench([_records(tmp_path, "trec", 1)], official=config_dir)[0]
    row = prediction_row(item, None, ChatResult("\nLocation\nQuestion: what?\nType: Entity", "stop"))
    assert row["score"] == 1.0  # the whole text names both classes and would score 1/2


def test_official_prompts_reach_the_model_cut_in_the_middle_without_system_prompt(config_dir: Path,
                                                                                  tmp_path: Path) -> None:
    from ctxsynth.tokenize import load_tokenizer

    items = load_longbench([_records(tmp_path, "hotpotqa", 2, words=300)], official=config_dir)
    expected = PROMPTS["hotpotqa"].format(context=" ".join(f"word0x{k}" for k in range(300)), input="question 0?")
    assert items[0].prompt == expected
    hf = load_tokenizer("smollm2").hf
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> Reply:
        seen.append(body)
        return Reply("answer 0\nmore")

    with OpenAIServer(responder) as server:
        backend = BACKENDS.get("openai")("m", base_url=server.url, max_retries=0)
        summary = evaluate(items, backend, tokenizer="smollm2", max_model_len=256, out_dir=tmp_path / "run",
                           system_prompt="ignored in official mode")
    first = next(b for b in seen if "question 0?" in b["messages"][-1]["content"])
    assert first["messages"] == [{"role": "user", "content": truncate_middle(hf, expected, 256).prompt}]
    assert first["max_tokens"] == 32
    rows = [json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert all(r["prompt_tokens"] == 256 and r["truncated_tokens"] > 0 for r in rows)
    assert summary["run"]["longbench_prompting"] == ["official"]
    text = (tmp_path / "run" / "scores.md").read_text()
    assert "official mode" in text and "NOT comparable" not in text
    # pred.py's files beside the run, scored by `ctxsynth score` exactly as the run scored them
    lines = [json.loads(x) for x in (tmp_path / "run" / "longbench_pred" / "hotpotqa.jsonl").read_text().splitlines()]
    assert lines[0] == {"pred": "answer 0\nmore", "answers": ["answer 0"], "all_classes": None, "length": 300}
    assert score_dir(tmp_path / "run" / "longbench_pred") == {"hotpotqa": summary["tasks"]["hotpotqa"]["score"]}


def test_our_wording_tables_say_not_comparable(tmp_path: Path) -> None:
    items = load_longbench([_records(tmp_path, "hotpotqa", 1)])
    with OpenAIServer(lambda body: Reply("answer 0")) as server:
        backend = BACKENDS.get("openai")("m", base_url=server.url, max_retries=0)
        evaluate(items, backend, tokenizer="smollm2", max_model_len=4096, out_dir=tmp_path / "run")
    assert "NOT comparable with published LongBench scores" in (tmp_path / "run" / "scores.md").read_text()


def test_no_chat_tasks_are_refused_by_a_chat_only_backend(config_dir: Path, tmp_path: Path) -> None:
    items = load_longbench([_records(tmp_path, "trec", 1)], official=config_dir)
    backend = BACKENDS.get("openai")("m", base_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(ValueError, match="sends trec as plain text"):
        evaluate(items, backend, tokenizer="smollm2", max_model_len=256, out_dir=tmp_path / "run")


@pytest.mark.slow
def test_smollm2_official_mode_end_to_end(config_dir: Path, tmp_path: Path) -> None:
    """trec goes as plain text (no chat template), hotpotqa through the chat template; both cut to
    max_length 128 with nothing reserved, so the chat prompt is longer than 128 tokens."""
    files = [_records(tmp_path, "trec", 2, words=200), _records(tmp_path, "hotpotqa", 2, words=200)]
    items = load_longbench(files, official=config_dir)
    backend = BACKENDS.get("transformers")(model="smollm2-135m-instruct", batch_size=4)
    evaluate(items, backend, tokenizer="smollm2", max_model_len=None, official_max_length=128, out_dir=tmp_path / "run")
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "run" / "predictions.jsonl").read_text().splitlines())}
    assert not any(r["error"] for r in rows.values())
    assert rows["trec-0"]["prompt_tokens"] == 128 and rows["trec-0"]["backend_prompt_tokens"] == 128
    assert rows["hotpotqa-0"]["prompt_tokens"] == 128 and rows["hotpotqa-0"]["backend_prompt_tokens"] > 128


def test_eval_config_longbench_official_keys(config_dir: Path, tmp_path: Path) -> None:
    from ctxsynth.eval.job import EvalConfig, collect_items

    data = _records(tmp_path, "hotpotqa", 2)
    items = collect_items(EvalConfig(name="x", longbench=[str(data)], longbench_official=str(config_dir)), tmp_path)
    assert [i.meta["prompting"] for i in items] == ["official", "official"] and items[0].max_new_tokens == 32
    with pytest.raises(ValueError, match="not both"):
        EvalConfig(name="x", longbench_official=str(config_dir), longbench_templates="t.yaml")
