"""Prompt fitting is exact in tokens of the rendered chat: never over budget, close to it."""

from __future__ import annotations

import pytest

from ctxsynth.eval.truncation import fit_prompt, rendered_length
from ctxsynth.tokenize import load_tokenizer

HEAD = "INSTRUCTION: read the text and answer. "
TAIL = " QUESTION: what is the magic number?"


def _prompt(n_words: int) -> str:
    body = " ".join(f"word{i % 97} café naïve {i}" for i in range(n_words))
    return HEAD + body + TAIL


@pytest.mark.parametrize("spec", ["smollm2", "tiktoken:cl100k_base"])
@pytest.mark.parametrize("max_model_len", [200, 333, 1024])
def test_middle_truncation_fits_exactly_and_keeps_head_and_tail(spec: str, max_model_len: int) -> None:
    tok = load_tokenizer(spec)
    prompt = _prompt(600)
    fitted = fit_prompt(prompt, tok, max_model_len=max_model_len, max_new_tokens=32, truncation="middle")
    budget = max_model_len - 32
    assert fitted.prompt_tokens == rendered_length(tok, fitted.prompt)
    assert budget - 3 <= fitted.prompt_tokens <= budget
    assert fitted.truncated_tokens > 0
    assert fitted.prompt.startswith(HEAD[:20]) and fitted.prompt.endswith(TAIL)
    assert len(tok.encode(prompt)) - fitted.truncated_tokens == pytest.approx(len(tok.encode(fitted.prompt)), abs=3)


def test_left_truncation_keeps_the_end_only() -> None:
    tok = load_tokenizer("smollm2")
    fitted = fit_prompt(_prompt(600), tok, max_model_len=300, max_new_tokens=20, truncation="left")
    assert fitted.prompt_tokens <= 280
    assert fitted.prompt.endswith(TAIL) and not fitted.prompt.startswith("INSTRUCTION")


def test_prompts_that_fit_or_mode_none_are_untouched() -> None:
    tok = load_tokenizer("smollm2")
    short = _prompt(5)
    assert fit_prompt(short, tok, max_model_len=4096, max_new_tokens=64).prompt == short
    long = _prompt(600)
    kept = fit_prompt(long, tok, max_model_len=256, max_new_tokens=64, truncation="none")
    assert kept.prompt == long and kept.truncated_tokens == 0 and kept.prompt_tokens > 256


def test_window_smaller_than_the_chat_template_is_an_error() -> None:
    tok = load_tokenizer("smollm2")
    with pytest.raises(ValueError, match="no room"):
        fit_prompt(_prompt(100), tok, max_model_len=40, max_new_tokens=32)


@pytest.mark.parametrize("spec", ["smollm2", "tiktoken:cl100k_base"])
def test_fitting_a_batch_gives_what_fitting_each_prompt_gives(spec: str) -> None:
    from ctxsynth.eval.truncation import fit_prompts

    tok = load_tokenizer(spec)
    prompts = [_prompt(n) for n in (5, 80, 600, 30, 1200)]
    budgets = [32, 8, 32, 64, 16]
    for mode in ("middle", "left", "none"):
        batch = fit_prompts(prompts, tok, max_model_len=500, max_new_tokens=budgets, truncation=mode)  # type: ignore[arg-type]
        assert batch == [fit_prompt(p, tok, max_model_len=500, max_new_tokens=b, truncation=mode)  # type: ignore[arg-type]
                         for p, b in zip(prompts, budgets, strict=True)]
    assert fit_prompts(prompts, tok, max_model_len=None, max_new_tokens=budgets)[4].truncated_tokens == 0
