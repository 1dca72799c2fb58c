"""What each export format trains on in its target trainer, and the settings that make it train well.

Every format is written so that the answer alone is trained, but some trainers only do that when
told: TRL trains every token of a `messages` row unless `assistant_only_loss=True`, and that needs a
chat template with `{% generation %}` markers, which most stock templates (SmolLM2's included) lack.
`training_notes` says per format, in the manifest and in the card, whether the default already
masks the prompt and what to set otherwise, together with the length setting that keeps every
sample whole (TRL's default `max_length` of 1,024 truncates longer rows; LLaMA-Factory's
`cutoff_len` does the same).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).parent / "templates"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
# tokenizer spec -> a shipped chat template that renders like the stock one, with generation markers
GENERATION_TEMPLATES = {"smollm2": TEMPLATE_DIR / "smollm2_training.jinja"}
LENGTH_SLACK = 16  # tokens above the longest counted sample: a trainer may add an eos or a newline


def max_length_for(longest: int | None) -> int | None:
    """A trainer length limit that keeps every sample whole: the longest plus slack, up to a multiple of 64."""
    if not longest:
        return None
    return 64 * math.ceil((longest + LENGTH_SLACK) / 64)


def generation_template(tokenizer_name: str) -> Path | None:
    return GENERATION_TEMPLATES.get(tokenizer_name)


def _messages_note(trainer: str, length: int | None, template: Path | None) -> dict[str, Any]:
    settings: dict[str, Any] = {"assistant_only_loss": True, "max_length": length}
    if template is not None:
        settings["chat_template_path"] = CHAT_TEMPLATE_FILE
        how = (f"this folder ships {CHAT_TEMPLATE_FILE} (the tokenizer's template with generation markers, "
               "rendering the same text): pass it as chat_template_path")
    else:
        how = ("your tokenizer's chat template needs {% generation %} markers; if it has none, use the "
               "trl_prompt_completion export instead")
    return {
        "trainer": trainer, "answer_only_by_default": False, "settings": settings,
        "warning": ("TRL trains on EVERY token of a `messages` row (the whole long context) by default; "
                    f"set assistant_only_loss=True to train the answer only; {how}. "
                    "`ctxsynth train` masks the prompt without any setting."),
    }


def training_notes(fmt: str, tokenizer_name: str, longest: int | None) -> dict[str, Any]:
    """{trainer, answer_only_by_default, settings, note or warning} for one export format."""
    length = max_length_for(longest)
    template = generation_template(tokenizer_name)
    if fmt == "trl_prompt_completion":
        return {"trainer": "TRL SFTTrainer", "answer_only_by_default": True, "settings": {"max_length": length},
                "note": "TRL's completion_only_loss (on by default for prompt/completion rows) trains the "
                        "completion (the answer and its end-of-turn token) only, with any chat template."}
    if fmt in ("trl_messages", "context_free"):
        return _messages_note("TRL SFTTrainer", length, template)
    if fmt == "parquet":
        note = _messages_note("datasets / TRL SFTTrainer (messages column)", length, template)
        note["warning"] = "The `messages` column trains like trl_messages. " + note["warning"]
        return note
    if fmt == "llamafactory":
        return {"trainer": "LLaMA-Factory", "answer_only_by_default": True, "settings": {"cutoff_len": length},
                "note": "LLaMA-Factory trains the assistant turns only unless train_on_prompt is true; "
                        "cutoff_len truncates longer samples, so keep it at least this value."}
    if fmt == "longalign":
        return {"trainer": "LongAlign / LongWriter trainers, ctxsynth train", "answer_only_by_default": True,
                "settings": {"max_length": length},
                "note": "These trainers compute the loss on the assistant turn; `ctxsynth train` masks the "
                        "prompt itself (data.max_length at least this value keeps every sample)."}
    return {"trainer": "unknown", "answer_only_by_default": None, "settings": {"max_length": length}}


def extra_files(fmt: str, tokenizer_name: str) -> dict[str, bytes]:
    """Files a format folder carries besides its data: the generation-marker chat template where needed."""
    template = generation_template(tokenizer_name)
    if template is None or not training_notes(fmt, tokenizer_name, None).get("warning"):
        return {}
    return {CHAT_TEMPLATE_FILE: template.read_bytes()}
