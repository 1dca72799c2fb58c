"""Packed samples must not see each other: per attention implementation, and through the loss.

Finding (CPU, torch 2.13 / transformers 5.23; the same checks run on CUDA under -m gpu): with
position_ids restarting per sample and no attention_mask, "sdpa", "eager" and "flex_attention"
all build a block-diagonal causal mask and isolate the samples; so does ctxsynth_varlen. Two ways
to lose the isolation silently: an all-ones attention_mask (what a padding collator sends), or a
KV cache (use_cache=True, the default in eval mode): transformers then skips packed detection.

Tolerances: logits of a packed forward equal the separate forwards to 1e-4 absolute in float32
(2e-2 in bf16 on CUDA); the packed loss equals the per-sample losses to 1e-5 relative in float32.
"""

from __future__ import annotations

import pytest
import torch

from ctxsynth.train.attention import register
from ctxsynth.train.collator import PackedCollator
from ctxsynth.train.data import tokenize_chat

# flex_attention compiles its kernel on first use: minutes on a 2-core CPU
CPU_IMPLS = ["sdpa", "eager", pytest.param("flex_attention", marks=pytest.mark.slow), "ctxsynth_varlen"]


def _samples(tokenizer, n: int = 3):
    eot = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    out = []
    for i in range(n):
        messages = [
            {"role": "user", "content": f"Document {i}: " + "lorem ipsum dolor " * (5 + 9 * i) + "What is the code?"},
            {"role": "assistant", "content": f"The code is {1000 + 37 * i}." + " Indeed." * i},
        ]
        out.append(tokenize_chat(messages, tokenizer, eot))
    return out


def _load(tiny_model_dir, impl: str, device: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    register()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=impl, dtype=dtype)
    return model.to(device).eval()


def _packed_vs_separate(model, samples, device: str, extra: dict | None = None) -> float:
    """Max |logit difference| between one packed forward and each sample run alone."""
    batch = PackedCollator()([{"input_ids": s.input_ids, "labels": s.labels, "seq_lengths": [len(s)]} for s in samples])
    inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items() if k != "labels"}
    inputs["use_cache"] = False  # with a cache, transformers skips the packed-sequence detection
    inputs.update(extra or {})
    with torch.no_grad():
        packed = model(**inputs).logits[0].float()
        alone = torch.cat([model(input_ids=torch.tensor([s.input_ids], device=device)).logits[0].float() for s in samples])
    return (packed - alone).abs().max().item()


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_packed_logits_equal_separate_cpu(tiny_model_dir, smol_tokenizer, impl):
    """Each implementation isolates the samples of a pack on CPU (float32)."""
    model = _load(tiny_model_dir, impl, "cpu", torch.float32)
    assert _packed_vs_separate(model, _samples(smol_tokenizer), "cpu") < 1e-4


def test_attention_mask_breaks_isolation(tiny_model_dir, smol_tokenizer):
    """Control: an all-ones attention_mask yields a plain causal mask, so later samples see earlier ones."""
    model = _load(tiny_model_dir, "sdpa", "cpu", torch.float32)
    samples = _samples(smol_tokenizer)
    total = sum(len(s) for s in samples)
    assert _packed_vs_separate(model, samples, "cpu", {"attention_mask": torch.ones(1, total, dtype=torch.long)}) > 1e-3


# Measured on the H200 (torch 2.11, transformers 5.23): Inductor finds no flex_attention kernel
# choice ("NoValidChoicesError") for these short packs, with head_dim 16 and 64 alike; at 32k-token
# packs of the 1B/8B benchmark, flex_attention trains (through TRL). The case stays, marked.
CUDA_IMPLS = [pytest.param("flex_attention", marks=pytest.mark.xfail(
    reason="Inductor: no flex_attention kernel choice for the tiny model's short packs (torch 2.11, H200)")),
    "sdpa", "eager", "ctxsynth_varlen"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("impl", CUDA_IMPLS)
def test_packed_logits_equal_separate_cuda(tiny_model_dir, smol_tokenizer, impl):
    """The same isolation on the GPU in bf16 (the varlen flash kernel runs there)."""
    model = _load(tiny_model_dir, impl, "cuda", torch.bfloat16)
    assert _packed_vs_separate(model, _samples(smol_tokenizer), "cuda") < 2e-2


def _packed_loss_and_grads(model, samples, device: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    batch = PackedCollator()([{"input_ids": s.input_ids, "labels": s.labels, "seq_lengths": [len(s)]} for s in samples])
    inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
    model.zero_grad()
    loss = model(**inputs, use_cache=False).loss
    loss.backward()
    return loss.detach().float(), [p.grad.detach().float().clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.slow
def test_compiled_layers_give_the_eager_loss_and_gradients_cpu(tiny_model_dir, smol_tokenizer):
    """`compile: true` (regional compilation of the decoder layers) changes speed, not results:
    the packed loss and every gradient match eager execution (float32, 1e-5 relative / 1e-6 absolute)."""
    from ctxsynth.train.recipe import compile_layers

    samples = _samples(smol_tokenizer)
    eager = _load(tiny_model_dir, "sdpa", "cpu", torch.float32).train()
    compiled = _load(tiny_model_dir, "sdpa", "cpu", torch.float32).train()
    assert compile_layers(compiled) == 2
    loss_e, grads_e = _packed_loss_and_grads(eager, samples, "cpu")
    loss_c, grads_c = _packed_loss_and_grads(compiled, samples, "cpu")
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_c, grads_e, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_varlen_runs_fp32_master_weights_under_bf16_autocast_cuda(tiny_model_dir, smol_tokenizer):
    """The recipe's default (float32 weights, bf16 autocast): rotary embeddings leave q/k in fp32,
    which the flash kernel refuses; the varlen path must cast and still isolate the samples."""
    model = _load(tiny_model_dir, "ctxsynth_varlen", "cuda", torch.float32)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        assert _packed_vs_separate(model, _samples(smol_tokenizer), "cuda") < 5e-2
        loss, grads = _packed_loss_and_grads(model.train(), _samples(smol_tokenizer), "cuda")
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)
    # a plain fp32 model without autocast: the kernel runs in bf16, o_proj gets fp32 back
    assert _packed_vs_separate(model.eval(), _samples(smol_tokenizer), "cuda") < 5e-2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_varlen_layers_match_eager_cuda(tiny_model_dir, smol_tokenizer):
    """Regional compilation around the varlen custom op: same packed loss as eager (bf16, 2e-2)."""
    from ctxsynth.train.recipe import compile_layers

    samples = _samples(smol_tokenizer)
    eager = _load(tiny_model_dir, "ctxsynth_varlen", "cuda", torch.bfloat16).train()
    compiled = _load(tiny_model_dir, "ctxsynth_varlen", "cuda", torch.bfloat16).train()
    compile_layers(compiled)
    loss_e, _ = _packed_loss_and_grads(eager, samples, "cuda")
    loss_c, grads_c = _packed_loss_and_grads(compiled, samples, "cuda")
    torch.testing.assert_close(loss_c, loss_e, rtol=2e-2, atol=2e-2)
    assert all(torch.isfinite(g).all() for g in grads_c)
