"""Gemma-3 mixes sliding-window (512 in Gemma-3-270M) and global attention layers; packed training
must give every layer its own pattern: within a sample, a sliding layer sees the last `window`
tokens only, and no layer sees another sample of the pack.

Checked on a tiny random Gemma3 (3 layers: sliding, sliding, global; window 16) with samples of
7-80 tokens, so most are longer than the window: the packed forward's logits equal each sample run
alone (plain causal SDPA with transformers' own sliding-window mask), per attention implementation.
A control shows the window matters here (dropping it changes the logits), so the test can fail.
"""

from __future__ import annotations

import pytest
import torch

from ctxsynth.train.attention import register
from ctxsynth.train.collator import PackedCollator

WINDOW = 16
LENGTHS = (80, 7, 45, 16, 17, 60)


@pytest.fixture(scope="module")
def tiny_gemma3_dir(tmp_path_factory: pytest.TempPathFactory):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16, sliding_window=WINDOW,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"], max_position_embeddings=256,
        pad_token_id=0, bos_token_id=2, eos_token_id=1,
    )
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():  # random norms near 0 would make every layer's output tiny
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.5)
    path = tmp_path_factory.mktemp("tiny_gemma3")
    model.save_pretrained(path)
    return path


def _load(path, impl: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    from transformers import AutoModelForCausalLM

    register()
    return AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl, dtype=dtype).to(device).eval()


def _samples() -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(3, 512, (n,), generator=g).tolist() for n in LENGTHS]


def _packed(model, samples: list[list[int]], device: str) -> torch.Tensor:
    rows = [{"input_ids": s, "labels": s, "seq_lengths": [len(s)]} for s in samples]
    batch = PackedCollator()(rows)
    inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        return model(**inputs, use_cache=False).logits[0].float()


def _alone(model, samples: list[list[int]], device: str) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(input_ids=torch.tensor([s], device=device), use_cache=False).logits[0].float()
                          for s in samples])


@pytest.mark.parametrize("impl", ["sdpa", "eager", "ctxsynth_varlen"])
def test_packed_gemma3_equals_separate_cpu(tiny_gemma3_dir, impl):
    reference = _alone(_load(tiny_gemma3_dir, "sdpa"), _samples(), "cpu")
    packed = _packed(_load(tiny_gemma3_dir, impl), _samples(), "cpu")
    assert (packed - reference).abs().max().item() < 1e-4


def test_the_window_changes_the_logits(tiny_gemma3_dir):
    """Control: the same model with a window longer than every sample (same layers, same rotary
    bases) gives other logits for samples longer than the real window and the same for shorter
    ones, so the test above tests the window."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model = _load(tiny_gemma3_dir, "sdpa")
    config = AutoConfig.from_pretrained(tiny_gemma3_dir)
    config.sliding_window = 1000
    full = AutoModelForCausalLM.from_pretrained(tiny_gemma3_dir, config=config, attn_implementation="sdpa").eval()
    samples = _samples()
    with torch.no_grad():
        for s in samples:
            ids = torch.tensor([s])
            diff = (model(input_ids=ids).logits - full(input_ids=ids).logits).abs().max().item()
            assert (diff > 1e-3) if len(s) > WINDOW else (diff < 1e-5), (len(s), diff)


def test_varlen_without_boundaries_keeps_the_window(tiny_gemma3_dir):
    """Without cu_seq_lens (one unpacked sequence: a forward without cache, or generation, whose
    sliding-window cache holds the last tokens only) the varlen implementation still applies the
    window; a batch of several rows is refused, not silently wrong."""
    model = _load(tiny_gemma3_dir, "ctxsynth_varlen")
    reference = _load(tiny_gemma3_dir, "sdpa")
    ids = torch.tensor([_samples()[0]])
    with torch.no_grad():
        diff = (model(input_ids=ids, use_cache=False).logits - reference(input_ids=ids, use_cache=False).logits)
        assert diff.abs().max().item() < 1e-4
        greedy = {"max_new_tokens": 4, "do_sample": False}
        assert model.generate(ids, **greedy).tolist() == reference.generate(ids, **greedy).tolist()
        with pytest.raises(ValueError, match="sdpa"):
            model(input_ids=ids.repeat(2, 1), use_cache=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("impl", ["sdpa", "ctxsynth_varlen"])
def test_packed_gemma3_equals_separate_cuda(tiny_gemma3_dir, impl):
    """The varlen flash kernel with its window on the GPU (bf16)."""
    reference = _alone(_load(tiny_gemma3_dir, "sdpa", "cuda", torch.bfloat16), _samples(), "cuda")
    packed = _packed(_load(tiny_gemma3_dir, impl, "cuda", torch.bfloat16), _samples(), "cuda")
    assert (packed - reference).abs().max().item() < 5e-2
