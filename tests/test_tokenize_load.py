"""The embedded tokenizer is built without AutoTokenizer (no torch import), and is the same tokenizer:
the same class, ids, offsets, chat rendering and decoding as AutoTokenizer's on real text."""

from __future__ import annotations

import subprocess
import sys

from ctxsynth.assemble.corpus import load_corpus
from ctxsynth.models import resolve_model_path
from ctxsynth.tokenize import HFTokenizer


def test_direct_load_equals_autotokenizer() -> None:
    from transformers import AutoTokenizer

    path = resolve_model_path("smollm2")
    ours = HFTokenizer(path)
    reference = AutoTokenizer.from_pretrained(path)
    assert type(ours.hf) is type(reference)
    texts = [t for _, t in load_corpus("essays", 120)[:40]] + ["", " x", "<|im_start|>user\nhi<|im_end|>", "naïve café 東京 🙂"]
    for text in texts:
        assert ours.hf.encode(text, add_special_tokens=False) == reference.encode(text, add_special_tokens=False)
        assert ours.decode(ours.encode(text)) == reference.decode(reference.encode(text, add_special_tokens=False))
    offsets = reference(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert ours.offsets_batch(texts) == [list(map(tuple, o)) for o in offsets]
    for i in range(0, 40, 8):
        messages = [{"role": "user", "content": texts[i]}, {"role": "assistant", "content": texts[i + 1][:80]}]
        assert ours.render_chat(messages) == reference.apply_chat_template(messages, tokenize=False)
        assert ours.render_chat(messages[:1], add_generation_prompt=True) == reference.apply_chat_template(
            messages[:1], tokenize=False, add_generation_prompt=True)
    assert ours.hf.chat_template == reference.chat_template and ours.hf.eos_token == reference.eos_token


def test_loading_the_embedded_tokenizer_does_not_import_torch() -> None:
    code = ("import sys; from ctxsynth.tokenize import load_tokenizer; t = load_tokenizer('smollm2'); "
            "t.render_chat([{'role': 'user', 'content': 'a'}]); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "False"
