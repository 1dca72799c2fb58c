"""The transformers backend's default decoding path: one left-padded batch through `model.generate`,
optionally with a static KV cache (see ctxsynth.llm.hf_backend's docstring for `static_cache`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

from ctxsynth.llm.hf_decoding import RowTokenBudget, row_processors

CACHE_BUCKET = 256  # static_cache: cache lengths are rounded up to a multiple of this
# every attention kernel but cuDNN's: on the H200 (torch 2.11, cuDNN 9) the same batches gave other
# texts in another process with it (586 of 2,048 texts; all 2,048 identical without it), and it was
# slower there (87.6 -> 52.7 s for those 2,048 requests): docs/results/multigpu.md
SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def generate_padded(model: Any, prompts: Sequence[list[int]], budgets: Sequence[int], seeds: Sequence[int],
                    temperatures: Sequence[float], top_ps: Sequence[float], *, eos_ids: list[int], pad_id: int,
                    repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
                    static_cache_rows: int | None = None) -> list[list[int]]:
    """Each prompt's generated tokens (up to its budget; the end token included when produced).
    `static_cache_rows`: decode with a static cache, the batch padded to that many rows with greedy
    one-token dummies (one batch shape for the compiled step)."""
    real = len(prompts)
    prompts, budgets, seeds = list(prompts), list(budgets), list(seeds)
    temperatures, top_ps = list(temperatures), list(top_ps)
    if static_cache_rows is not None and real < static_cache_rows:
        dummies = static_cache_rows - real  # greedy rows of the first prompt that stop after one token
        prompts += [prompts[0]] * dummies
        budgets, seeds = budgets + [1] * dummies, seeds + [0] * dummies
        temperatures, top_ps = temperatures + [0.0] * dummies, top_ps + [1.0] * dummies
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention[row, width - len(ids):] = 1
    processors = row_processors(seeds, temperatures, top_ps, width, repetition_penalty, no_repeat_ngram_size)
    config = GenerationConfig(max_new_tokens=max(budgets), do_sample=False, num_beams=1, eos_token_id=eos_ids,
                              pad_token_id=pad_id)
    if static_cache_rows is not None:
        config.cache_implementation = "static"
        config.max_cache_len = -(-(width + max(budgets)) // CACHE_BUCKET) * CACHE_BUCKET
    device = next(model.parameters()).device
    with torch.inference_mode(), sdpa_kernel(SDPA_BACKENDS):
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                             generation_config=config, logits_processor=LogitsProcessorList(processors),
                             stopping_criteria=StoppingCriteriaList([RowTokenBudget(budgets, width)]))
    return out[:real, width:].cpu().tolist()
