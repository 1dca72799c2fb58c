"""TRL 1.16's own dataset preparation masks exactly the answer of an exported example.

Finding (SmolLM2): its stock chat template has no {% generation %} markers and TRL cannot patch it,
so `assistant_only_loss` on the `messages` export fails unless our shipped training template is
given as `chat_template_path`; the `prompt`/`completion` export needs nothing: TRL's
completion-only loss masks it with the stock template. Both routes are tested here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import load_dataset
from export_factory import make_samples

import ctxsynth.export
from ctxsynth.export import export_samples
from ctxsynth.models import embedded_model_dir
from ctxsynth.tokenize import load_tokenizer

trl = pytest.importorskip("trl")
TEMPLATE = Path(ctxsynth.export.__file__).parent / "templates" / "smollm2_training.jinja"
EOT = "<|im_end|>\n"  # what the template appends to an assistant turn; the model must learn to stop


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(embedded_model_dir()))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("export")
    samples = make_samples()[:3]
    export_samples(samples, out, ["trl_messages", "trl_prompt_completion"], config_hash="c", tokenizer_name="smollm2")
    return out, samples


def _prepared(model, data_file: Path, tmp_path: Path, **config):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))  # fresh: TRL may swap its template
    dataset = load_dataset("json", data_files=str(data_file), split="train")
    args = trl.SFTConfig(output_dir=str(tmp_path), report_to="none", max_length=None, use_cpu=True, **config)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    return trainer.train_dataset, tokenizer


def _assert_mask_is_the_answer(row, tokenizer, sample) -> None:
    ids, labels = row["input_ids"], row["labels"]
    trained = [i for i, label in enumerate(labels) if label != -100]
    assert trained == list(range(trained[0], len(ids))), "the trained tokens must be one span at the end"
    prompt_text = load_tokenizer("smollm2").render_chat(sample.messages[:1], add_generation_prompt=True)
    assert tokenizer.decode(ids[: trained[0]]) == prompt_text
    assert tokenizer.decode(ids[trained[0]:]) == sample.messages[-1]["content"] + EOT


def test_prompt_completion_export_masks_exactly_the_answer(model, exported, tmp_path):
    out, samples = exported
    prepared, tokenizer = _prepared(model, out / "trl_prompt_completion" / "data.jsonl", tmp_path)
    assert len(prepared) == len(samples)
    for row, sample in zip(prepared, samples, strict=True):
        _assert_mask_is_the_answer(row, tokenizer, sample)


def test_messages_export_needs_a_generation_template_for_assistant_only_loss(model, exported, tmp_path):
    out, _ = exported
    with pytest.raises(ValueError, match="generation"):
        _prepared(model, out / "trl_messages" / "data.jsonl", tmp_path, assistant_only_loss=True)


def test_messages_export_with_shipped_template_masks_exactly_the_answer(model, exported, tmp_path):
    out, samples = exported
    prepared, tokenizer = _prepared(model, out / "trl_messages" / "data.jsonl", tmp_path,
                                    assistant_only_loss=True, chat_template_path=str(TEMPLATE))
    for row, sample in zip(prepared, samples, strict=True):
        _assert_mask_is_the_answer(row, tokenizer, sample)


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
     {"role": "user", "content": "q2\n\nmore"}, {"role": "assistant", "content": "a2"}],
])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_shipped_template_renders_like_the_stock_one(messages, add_generation_prompt):
    stock = load_tokenizer("smollm2").hf
    kwargs = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    assert stock.apply_chat_template(messages, chat_template=TEMPLATE.read_text(), **kwargs) == \
        stock.apply_chat_template(messages, **kwargs)
