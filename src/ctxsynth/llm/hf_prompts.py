"""The token ids the transformers backend feeds its model for a request: the chat template
rendered with the generation prompt (or the final assistant message left open, a prefill), or a
plain-text request (one RAW_ROLE message) as the tokenizer encodes it, BOS included.

A batch is tokenized in one call per special-token mode: the fast tokenizer spreads it over the
cores (a 1,600-prompt NIAH grid took 11.6 s prompt by prompt on 2 cores, 6.2 s batched). Prompts the
eval runner has encoded already (same tokenizer definition, same text) are not encoded again
(ctxsynth.tokenize.shared_encodings).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ctxsynth.llm.base import RAW_ROLE, ChatRequest
from ctxsynth.tokenize import take_encoding


def render(tokenizer: Any, request: ChatRequest) -> tuple[str, bool]:
    """The prompt text and whether the tokenizer adds its special tokens (plain text: as the
    tokenizer adds them; a chat: the template writes them)."""
    messages = [dict(m) for m in request.messages]
    if request.params.max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {request.params.max_tokens}")
    if len(messages) == 1 and messages[0]["role"] == RAW_ROLE:
        return messages[0]["content"], True
    prefill = messages[-1]["role"] == "assistant"
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=not prefill,
                                             continue_final_message=prefill)
    else:
        text = "\n\n".join(m["content"] for m in messages)
    return text, False


def check_length(ids: list[int], limit: int | None) -> list[int]:
    if limit is not None and len(ids) > limit:
        raise ValueError(f"prompt has {len(ids)} tokens, more than the limit of {limit}")
    return ids


def encode(tokenizer: Any, request: ChatRequest, limit: int | None) -> list[int]:
    """One request's ids; ValueError for a bad request or a prompt over `limit` tokens."""
    text, special = render(tokenizer, request)
    return check_length(list(tokenizer(text, add_special_tokens=special)["input_ids"]), limit)


def encode_all(tokenizer: Any, requests: Sequence[ChatRequest],
               limit: int | None) -> tuple[dict[int, list[int]], dict[int, str]]:
    """{request index: ids} of every good request (what `encode` gives) and {index: error} of the rest."""
    texts: dict[int, tuple[str, bool]] = {}
    errors: dict[int, str] = {}
    for i, request in enumerate(requests):
        try:
            texts[i] = render(tokenizer, request)
        except Exception as exc:
            errors[i] = f"prompt: {type(exc).__name__}: {exc}"
    ids: dict[int, list[int]] = {}
    for i, (text, special) in texts.items():  # measured already by the eval runner (ctxsynth.tokenize.shared_encodings)
        known = None if special else take_encoding(tokenizer, text)
        if known is not None:
            ids[i] = known
    for special in (True, False):
        batch = [i for i, (_, s) in texts.items() if s is special and i not in ids]
        if batch:
            encoded = tokenizer([texts[i][0] for i in batch], add_special_tokens=special)["input_ids"]
            ids.update((i, e if isinstance(e, list) else list(e)) for i, e in zip(batch, encoded, strict=True))  # no copy of 25M ids
    prompts: dict[int, list[int]] = {}
    for i in sorted(ids):
        try:
            prompts[i] = check_length(ids[i], limit)
        except ValueError as exc:
            errors[i] = f"prompt: {type(exc).__name__}: {exc}"
    return prompts, errors
