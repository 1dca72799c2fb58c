"""LongBench's official prediction path, driven by the user's own LongBench config files.

LongBench's pred.py prompts each task with `dataset2prompt.json[task].format(**record)`, generates
`dataset2maxlen.json[task]` new tokens, cuts the middle out of the tokenized prompt when it is longer
than the model's maximum length (`model2maxlen.json`; nothing is reserved for the output or for the
chat format), and wraps the prompt in the model's chat format except for six few-shot and code
tasks, which it sends as plain text (the tokenizer's BOS included). eval.py scores the first line
of the prediction for four tasks. Those rules are data in templates/longbench.yaml (metric,
first_line, official_chat per task; ctxsynth.eval.longbench.load_official_specs reads them with the
user's files); this module holds the truncation and the rules as lookup sets. The prompt texts are
read from the user's checkout at run time and never shipped with ctxsynth.
"""

from __future__ import annotations

import logging
from typing import Any

from ctxsynth.errors import UserError
from ctxsynth.eval.longbench import load_official_specs, load_task_specs
from ctxsynth.eval.truncation import FittedPrompt

__all__ = ["FIRST_LINE_TASKS", "NO_CHAT_TASKS", "TASK_METRICS", "load_official_specs", "truncate_middle"]

log = logging.getLogger(__name__)

# the official rules, as templates/longbench.yaml states them per task (one table, not two)
_SPECS = load_task_specs()
TASK_METRICS: dict[str, str] = {name: s.metric for name, s in _SPECS.items()}  # eval.py's dataset2metric
FIRST_LINE_TASKS: frozenset[str] = frozenset(name for name, s in _SPECS.items() if s.first_line)
NO_CHAT_TASKS: frozenset[str] = frozenset(name for name, s in _SPECS.items() if not s.official_chat)


def truncate_middle(hf_tokenizer: Any, prompt: str, max_length: int) -> FittedPrompt:
    """pred.py's truncation: tokenize the prompt as the tokenizer does by default (BOS included
    when the tokenizer adds one); when that is longer than `max_length`, keep the first and the
    last int(max_length / 2) tokens, each half decoded on its own without special tokens and the
    two texts joined. Nothing is reserved for the chat format or the output.

    `prompt_tokens` is the length before the cut when nothing was cut, else the length of the two
    kept halves; the chat format, when used, adds its own tokens on top (as in pred.py).
    """
    if max_length < 2:
        raise UserError(f"the official max_length must be at least 2 tokens, not {max_length}")
    ids = list(hf_tokenizer(prompt, truncation=False)["input_ids"])
    if len(ids) <= max_length:
        return FittedPrompt(prompt, len(ids), 0)
    half = int(max_length / 2)
    text = (hf_tokenizer.decode(ids[:half], skip_special_tokens=True)
            + hf_tokenizer.decode(ids[-half:], skip_special_tokens=True))
    return FittedPrompt(text, 2 * half, len(ids) - 2 * half)
