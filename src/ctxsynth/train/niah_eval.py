"""The NIAH grid run at training checkpoints: test items from ctxsynth.niah, greedy generation with
the in-memory model, scored by ctxsynth.eval.metrics.all_substring.

This is the callable `NiahCallback` expects; `train` wires it in when `niah.enabled` is set. It
generates one prompt at a time (no padding, so no attention-mask subtleties) and is meant for
small grids: a few lengths x depths x samples.
"""

from __future__ import annotations

import logging
from typing import Any

from ctxsynth.eval.metrics import all_substring
from ctxsynth.train.config import NiahConfig as TrainNiahConfig

log = logging.getLogger(__name__)


def niah_items(config: TrainNiahConfig, tokenizer_spec: str) -> list[Any]:
    from ctxsynth.niah import NiahConfig
    from ctxsynth.niah.build import build_test_items, make_fitter
    from ctxsynth.niah.config import TestSpec

    niah = NiahConfig(tokenizer=tokenizer_spec, variants=["single", "multi_value"], train=None,
                      test=TestSpec(lengths=list(config.lengths), depths=list(config.depths),
                                    samples_per_cell=config.samples_per_cell, max_new_tokens=64))
    fitter = make_fitter(niah)
    return [item for variant in niah.variants for item in build_test_items(niah, fitter, variant)]


def evaluate_niah(model: Any, tokenizer: Any, config: TrainNiahConfig, tokenizer_spec: str = "smollm2") -> dict[str, float]:
    """Accuracy per variant and overall on a small NIAH grid, with `model` as it is now."""
    import torch

    items = niah_items(config, tokenizer_spec)
    device = next(model.parameters()).device
    scores: dict[str, list[float]] = {}
    for item in items:
        text = tokenizer.apply_chat_template([{"role": "user", "content": item.prompt}], tokenize=False,
                                             add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=item.max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        prediction = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        scores.setdefault(item.meta["variant"], []).append(all_substring(prediction, item.answers))
    result = {variant: 100 * sum(v) / len(v) for variant, v in scores.items()}
    result["mean"] = sum(result.values()) / len(result) if result else 0.0
    return result
