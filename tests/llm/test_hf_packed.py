"""The packed generation path (ctxsynth.llm.hf_packed) against `model.generate` on the CPU in float32.

Protects: greedy texts equal to the default path (the real embedded SmolLM2 model, prompts of mixed
length in one wave and across waves and prefill chunks), per-request seeded sampling that gives the
default path's sample, end tokens and budgets per row, results streamed per wave, and sliding-window
layers (a small random Gemma-3 with prompts longer than its window) equal to transformers' own
masks.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from ctxsynth.errors import ConfigError
from ctxsynth.llm.base import ChatRequest, SamplingParams
from ctxsynth.llm.hf_backend import TransformersBackend
from ctxsynth.llm.hf_packed import PackedGenerator
from ctxsynth.llm.hf_packed_attention import dense_groups
from ctxsynth.llm.hf_packed_plan import ModelShape, Row

TOPICS = ["a lighthouse keeper", "the planet Jupiter and its moons", "bread", "rivers of Europe", "tea"]


def ask(text: str, seed: int = 0, temperature: float = 0.0, max_tokens: int = 16) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}],
                       SamplingParams(temperature=temperature, top_p=0.9, max_tokens=max_tokens, seed=seed))


def requests(temperature: float = 0.0) -> list[ChatRequest]:
    out = []
    for k, topic in enumerate(TOPICS):
        filler = " ".join(["Consider the following carefully."] * (k * 5))
        out.append(ask(f"{filler} Write two sentences about {topic}.", seed=100 + k, temperature=temperature,
                       max_tokens=3 + 2 * k))
    return out


@pytest.fixture(scope="module")
def default() -> TransformersBackend:
    return TransformersBackend("smollm2-135m-instruct", device="cpu", dtype="float32", batch_size=5, packed=False)


@pytest.fixture(scope="module")
def packed() -> TransformersBackend:
    # a tiny prefill chunk and few rows per wave: the 5 prompts take several chunks and waves
    return TransformersBackend("smollm2-135m-instruct", device="cpu", dtype="float32", packed=True,
                               prefill_tokens=150, max_rows=3)


def test_greedy_texts_equal_model_generate(default: TransformersBackend, packed: TransformersBackend) -> None:
    reqs = requests()
    want = default.generate(reqs)
    seen: list[int] = []
    got = packed.generate(reqs, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(len(reqs)))
    assert [r.text for r in got] == [r.text for r in want]
    assert [r.finish_reason for r in got] == [r.finish_reason for r in want]
    assert [r.usage for r in got] == [r.usage for r in want]
    assert all(r.answered and r.text for r in got)


def test_seeded_samples_equal_the_default_path(default: TransformersBackend, packed: TransformersBackend) -> None:
    reqs = requests(temperature=0.8)
    assert [r.text for r in packed.generate(reqs)] == [r.text for r in default.generate(reqs)]


def test_dropping_finished_rows_changes_no_token_and_saves_row_steps(default: TransformersBackend) -> None:
    reqs = requests()  # budgets 3, 5, 7, 9, 11: rows end at different steps
    backend = TransformersBackend("smollm2-135m-instruct", device="cpu", dtype="float32", packed=True)
    backend.load()
    model = backend.hf_model
    eos = model.generation_config.eos_token_id
    rows = [Row(backend.encode_prompt(r), r.params.max_tokens) for r in reqs]

    def run(**kw: float) -> tuple[list[list[int]], dict[str, float]]:
        gen = PackedGenerator(model, eos_ids=eos if isinstance(eos, list) else [eos], pad_id=0, max_rows=8, **kw)
        got: dict[int, list[int]] = {}
        gen.generate(rows, lambda wave: [], lambda wave, tokens: got.update(zip(wave, tokens, strict=True)))
        return [got[i] for i in range(len(rows))], gen.stats

    whole, plain = run(compact_min_rows=10**9)
    dropped, compacted = run(compact_min_rows=2, compact_below=0.9)
    assert dropped == whole
    assert plain["compactions"] == 0 and compacted["compactions"] >= 2
    assert compacted["row_steps"] < plain["row_steps"] and compacted["steps"] == plain["steps"]
    tok = backend._tokenizer
    assert [tok.decode(t, skip_special_tokens=True) for t in dropped] == [r.text for r in default.generate(reqs)]


def test_a_long_prompt_with_a_short_budget_stays_inside_the_wave_cache(default: TransformersBackend,
                                                                      packed: TransformersBackend) -> None:
    # one wave: the longer prompt has the shorter budget, so the wave's cache ends at the other row's
    # prompt + budget; the ended row keeps stepping with the wave and must not write past that end
    # (RULER's tasks mix budgets in a wave: on CUDA this was a device-side assert at 32k)
    short = ask("Write two sentences about tea.", max_tokens=12)
    long = ask("Please consider this. Write two sentences about tea.", max_tokens=2)
    backend = packed
    backend.load()
    gap = len(backend.encode_prompt(long)) - len(backend.encode_prompt(short))
    assert 2 <= gap < 10  # past the cache without the bound: the long row's prompt + 10 steps > cap
    reqs = [short, long]
    assert [r.text for r in packed.generate(reqs)] == [r.text for r in default.generate(reqs)]


def _planner(windows: list[int | None]) -> PackedGenerator:
    gen = PackedGenerator.__new__(PackedGenerator)
    gen.max_rows, gen.dtype = 4, torch.float32
    gen.shape = ModelShape(layers=len(windows), kv_heads=1, head_dim=1, windows=windows)
    return gen


def test_waves_fit_the_cache_budget_and_keep_every_row() -> None:
    gen = _planner([None])  # one full layer: 8 bytes (a key and a value in float32) per position
    assert gen.row_bytes(100) == 800
    rows = [Row([1] * n, 5) for n in (50, 10, 30, 200, 20, 40, 60)]
    waves = list(gen.waves(rows, budget_bytes=180 * 8))
    assert sorted(i for w in waves for i in w) == list(range(len(rows)))
    for w in waves:
        assert len(w) <= 4
        assert len(w) == 1 or len(w) * max(len(rows[i].ids) + 5 for i in w) <= 180
    lengths = [len(rows[i].ids) for w in waves for i in w]
    assert lengths == sorted(lengths)  # similar lengths share a wave: little padding in the cache


def test_a_memory_squeeze_shrinks_waves_for_a_while_and_changes_no_token() -> None:
    """Out of memory (on a shared GPU: a training run beside the evaluation grew): the wave reruns at half
    its bytes, and the ceiling doubles back after each wave that fits, so later waves are full again
    (they stayed at the smallest size for the rest of the run before)."""
    model = _tiny_gemma3()
    prompts = [[(3 * k + 5 * j) % 290 + 5 for j in range(10)] for k in range(14)]  # equal lengths: exact wave sizes
    want: dict[int, list[int]] = {}
    PackedGenerator(model, eos_ids=[], pad_id=0, max_rows=4).generate(
        [Row(ids, 6) for ids in prompts], lambda wave: [], lambda wave, tokens: want.update(zip(wave, tokens, strict=True)))
    gen = PackedGenerator(model, eos_ids=[], pad_id=0, max_rows=4)
    sizes: list[int] = []
    run_wave = gen._run_wave

    def squeezed(rows: list[Row], processors: object) -> list[list[int]]:
        sizes.append(len(rows))
        if len(sizes) == 1:  # the first two waves find the memory taken: the allocator says so, or a
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        if len(sizes) == 2:  # kernel launch does (torch raises CUDA's error as an AcceleratorError)
            raise torch.AcceleratorError("CUDA error: out of memory (injected)")
        return run_wave(rows, processors)  # type: ignore[arg-type]

    gen._run_wave = squeezed  # type: ignore[method-assign]
    got: dict[int, list[int]] = {}
    gen.generate([Row(ids, 6) for ids in prompts], lambda wave: [], lambda wave, tokens: got.update(zip(wave, tokens, strict=True)))
    assert got == want
    assert sizes == [4, 2, 1, 2, 4, 4, 3] and gen.stats["oom_splits"] == 2

    def broken(rows: list[Row], processors: object) -> list[list[int]]:
        raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered (injected)")

    gen._run_wave = broken  # type: ignore[method-assign]
    with pytest.raises(torch.AcceleratorError, match="illegal memory access"):  # not memory: no retry
        gen.generate([Row(ids, 6) for ids in prompts], lambda wave: [], lambda wave, tokens: None)
    assert gen.stats["oom_splits"] == 2


def test_sliding_layers_cost_a_ring_of_their_window() -> None:
    gen = _planner([8, 8, 8, None])
    assert gen.row_bytes(5) == 4 * 5 * 8  # shorter than the window: every position in every layer
    assert gen.row_bytes(100) == (3 * 8 + 100) * 8  # longer: the sliding layers keep 8 slots
    assert len(list(gen.waves([Row([1] * 95, 5)] * 4, budget_bytes=4 * 124 * 8))) == 1
    assert len(list(gen.waves([Row([1] * 95, 5)] * 4, budget_bytes=4 * 400 * 8))) == 1
    assert len(list(gen.waves([Row([1] * 95, 5)] * 4, budget_bytes=4 * 123 * 8))) == 2


@pytest.mark.parametrize("kernel", ["sdpa", "bmm"])
def test_decode_kernels_give_transformers_tokens_with_rings(kernel: str) -> None:
    """The CPU's decoding kernels over a Gemma-3 whose sliding layers keep rings of 8 slots."""
    model = _tiny_gemma3()
    prompts = [[(5 * k + 7 * j) % 290 + 5 for j in range(n)] for k, n in enumerate((31, 6, 19, 8))]
    with torch.inference_mode():
        want = [model.generate(torch.tensor([ids]), max_new_tokens=14, do_sample=False, eos_token_id=None,
                               pad_token_id=0)[0, len(ids):].tolist() for ids in prompts]
    gen = PackedGenerator(model, eos_ids=[], pad_id=0, prefill_tokens=40, max_rows=4, decode_kernel=kernel)
    got: dict[int, list[int]] = {}
    gen.generate([Row(ids, 14) for ids in prompts], lambda wave: [],
                 lambda wave, tokens: got.update(zip(wave, tokens, strict=True)))
    assert [got[i] for i in range(len(prompts))] == want


def test_decode_kernel_names_are_checked() -> None:
    model = _tiny_gemma3()
    with pytest.raises(ValueError, match="decode_kernel must be"):
        PackedGenerator(model, eos_ids=[], pad_id=0, decode_kernel="fast")
    with pytest.raises(ValueError, match="CUDA only"):
        PackedGenerator(model, eos_ids=[], pad_id=0, decode_kernel="flash")


def test_packed_and_static_cache_are_exclusive_and_packed_is_in_the_identity() -> None:
    with pytest.raises(ConfigError, match="packed and static_cache"):
        TransformersBackend("smollm2-135m-instruct", device="cpu", packed=True, static_cache=True)
    with pytest.raises(ConfigError, match="packed must be"):
        TransformersBackend("smollm2-135m-instruct", device="cpu", packed="yes")
    on = TransformersBackend("smollm2-135m-instruct", device="cpu", packed=True).identity()
    off = TransformersBackend("smollm2-135m-instruct", device="cpu").identity()
    assert on["packed"] is True and "packed" not in off  # CPU default: off, the old cache keys hold


def _tiny_gemma3() -> torch.nn.Module:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=8,
                              layer_types=["sliding_attention", "sliding_attention", "sliding_attention",
                                           "full_attention"], max_position_embeddings=512)
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    model.config._attn_implementation = "sdpa"
    return model


def test_sliding_window_layers_match_transformers_own_masks() -> None:
    model = _tiny_gemma3()
    prompts = [[(7 * k + 3 * j) % 290 + 5 for j in range(n)] for k, n in enumerate((40, 13, 27))]
    with torch.inference_mode():
        want = []
        for ids in prompts:  # one prompt at a time, no padding: transformers' sliding + causal masks
            out = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=None,
                                 pad_token_id=0)
            want.append(out[0, len(ids):].tolist())
        full = [model(torch.tensor([ids])).logits[0, -1] for ids in prompts]
    gen = PackedGenerator(model, eos_ids=[], pad_id=0, prefill_tokens=60, max_rows=2)  # no end token: 12 each
    got: dict[int, list[int]] = {}

    def on_wave(wave: list[int], tokens: list[list[int]]) -> None:
        got.update(zip(wave, tokens, strict=True))

    gen.generate([Row(ids, 12) for ids in prompts], lambda wave: [], on_wave)
    assert [got[i] for i in range(len(prompts))] == want
    assert all(len(t) == 12 for t in want) and all(len(p) > 8 for p in prompts)  # past the window
    assert torch.stack(full).argmax(-1).tolist() == [t[0] for t in want]


def test_packing_blockers_name_what_only_model_generate_applies() -> None:
    from ctxsynth.llm.hf_packed_plan import packing_blockers

    model = _tiny_gemma3()
    assert packing_blockers(model) == []
    model.generation_config.repetition_penalty = 1.3
    model.generation_config.min_new_tokens = 2
    assert packing_blockers(model) == ["repetition_penalty", "min_new_tokens"]
    model.config.attn_logit_softcapping = 50.0  # Gemma-2's attention
    assert packing_blockers(model)[-1] == "packed generation does not support attention logit soft-capping"


def test_dense_groups_pad_only_similar_lengths() -> None:
    groups = dense_groups([100, 100, 90, 400, 50], "cpu", slack=1.25)
    assert [(g.start, g.end, g.rows, g.length) for g in groups] == [(0, 290, 3, 100), (290, 690, 1, 400),
                                                                    (690, 740, 1, 50)]
    assert groups[0].index.tolist() == list(range(100)) + list(range(100, 200)) + list(range(200, 290))
    assert dense_groups([7], "cpu")[0].index.tolist() == list(range(7))
    # the padding's places, and none where the prompts are of one length (the chunk is then the batch)
    assert groups[0].pad is not None and groups[0].pad.tolist() == [290, 291, 292, 293, 294, 295, 296, 297, 298, 299]
    assert groups[1].pad is None and groups[2].pad is None
    assert [g.pad for g in dense_groups([8, 8, 8], "cpu")] == [None]


def test_dense_prefill_attention_equals_per_prompt_attention() -> None:
    from ctxsynth.llm.hf_packed_attention import dense_attention
    from ctxsynth.varlen import per_sequence_sdpa

    lengths = [33, 30, 31, 5, 64]
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(sum(lengths), h, 16, generator=g, dtype=torch.float64) for h in (4, 2, 2))
    cu = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32)
    want = per_sequence_sdpa(q, k, v, cu, 0.25, None)
    groups = dense_groups(lengths, "cpu")
    assert len(groups) < len(lengths)  # some prompts really were padded together
    assert any(x.pad is not None for x in groups) and any(x.pad is None for x in groups)
    torch.testing.assert_close(dense_attention(q, k, v, groups, 0.25), want, rtol=1e-12, atol=1e-12)
    # one length over the whole chunk: the chunk itself is the dense batch (no scatter, no gather)
    same = [24, 24, 24]
    q, k, v = q[:72], k[:72], v[:72]
    cu = torch.tensor([0, 24, 48, 72], dtype=torch.int32)
    torch.testing.assert_close(dense_attention(q, k, v, dense_groups(same, "cpu"), 0.25),
                               per_sequence_sdpa(q, k, v, cu, 0.25, None), rtol=1e-12, atol=1e-12)


def test_dense_prefill_gives_transformers_tokens() -> None:
    model = _tiny_gemma3()
    prompts = [[(3 * k + 5 * j) % 290 + 5 for j in range(n)] for k, n in enumerate((31, 29, 30, 12, 8))]
    with torch.inference_mode():
        want = [model.generate(torch.tensor([ids]), max_new_tokens=9, do_sample=False, eos_token_id=None,
                               pad_token_id=0)[0, len(ids):].tolist() for ids in prompts]
    with pytest.raises(ValueError, match="prefill_kernel must be"):
        PackedGenerator(model, eos_ids=[], pad_id=0, prefill_kernel="cudnn")
    gen = PackedGenerator(model, eos_ids=[], pad_id=0, prefill_tokens=70, max_rows=5, prefill_kernel="dense")
    got: dict[int, list[int]] = {}
    gen.generate([Row(ids, 9) for ids in prompts], lambda wave: [],
                 lambda wave, tokens: got.update(zip(wave, tokens, strict=True)))
    assert [got[i] for i in range(len(prompts))] == want


def test_dense_prefill_without_its_kernel_says_which_setting_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.nn.attention import SDPBackend

    from ctxsynth.llm import hf_packed_attention

    # as on a GPU whose cuDNN has no kernel for the shape: the CPU has no cuDNN backend at all
    monkeypatch.setitem(hf_packed_attention.DENSE_BACKENDS, "cpu", [SDPBackend.CUDNN_ATTENTION])
    gen = PackedGenerator(_tiny_gemma3(), eos_ids=[], pad_id=0, prefill_kernel="dense")
    with pytest.raises(ConfigError, match="CUDNN_ATTENTION refused .* set prefill_kernel: varlen"):
        gen.generate([Row([5, 6, 7, 8], 2)], lambda wave: [], lambda wave, tokens: None)


def test_prefill_kernel_is_checked_and_in_the_identity_only_when_dense() -> None:
    with pytest.raises(ConfigError, match="prefill_kernel must be"):
        TransformersBackend("smollm2-135m-instruct", device="cpu", packed=True, prefill_kernel="cudnn")
    dense = TransformersBackend("smollm2-135m-instruct", device="cpu", packed=True, prefill_kernel="dense").identity()
    plain = TransformersBackend("smollm2-135m-instruct", device="cpu", packed=True).identity()
    assert dense["prefill_kernel"] == "dense" and "prefill_kernel" not in plain


def test_memory_fraction_reaches_the_wave_planner_and_not_the_identity() -> None:
    """Lanes sharing a GPU give each evaluation a share of the free memory (model.options.memory_fraction);
    it decides which rows share a wave, not what they generate, so cached answers stay valid."""
    for bad in (0, 1.5):
        with pytest.raises(ConfigError, match="memory_fraction must be in"):
            TransformersBackend("smollm2-135m-instruct", device="cpu", packed=True, memory_fraction=bad)
    shared = TransformersBackend("smollm2-135m-instruct", device="cpu", packed=True, memory_fraction=0.25)
    assert shared.identity() == TransformersBackend("smollm2-135m-instruct", device="cpu", packed=True).identity()
    shared.generate([ask("Hi", max_tokens=2)])
    assert shared._packed.memory_fraction == 0.25 and shared._replica_kwargs["memory_fraction"] == 0.25


def _tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=300, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


@pytest.mark.gpu
@pytest.mark.parametrize("prefill", ["varlen", "dense"])
@pytest.mark.parametrize("kernel", ["flash", "bmm", "sdpa"])
@pytest.mark.parametrize("build", [_tiny_llama, _tiny_gemma3], ids=["llama", "gemma3-sliding"])
def test_packed_on_cuda_agrees_with_generate_in_bf16(build: object, kernel: str, prefill: str) -> None:
    model = build().to("cuda", torch.bfloat16)  # type: ignore[operator]
    model.config._attn_implementation = "sdpa"
    prompts = [[(11 * k + 5 * j) % 290 + 5 for j in range(n)] for k, n in enumerate((700, 90, 333, 1500, 64, 12))]
    with torch.inference_mode():
        want = [model.generate(torch.tensor([ids], device="cuda"), max_new_tokens=10, do_sample=False,
                               eos_token_id=None, pad_token_id=0)[0, len(ids):].tolist() for ids in prompts]
    gen = PackedGenerator(model, eos_ids=[], pad_id=0, prefill_tokens=1600, max_rows=4, decode_kernel=kernel,
                          prefill_kernel=prefill)
    got: dict[int, list[int]] = {}
    gen.generate([Row(ids, 10) for ids in prompts], lambda wave: [],
                 lambda wave, tokens: got.update(zip(wave, tokens, strict=True)))
    same = sum(got[i] == want[i] for i in range(len(prompts)))
    first = sum(got[i][0] == want[i][0] for i in range(len(prompts)))
    assert all(len(got[i]) == 10 for i in range(len(prompts)))
    assert first >= len(prompts) - 1 and same >= len(prompts) // 2, (got, want)
