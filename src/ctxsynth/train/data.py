"""Training rows: chat samples -> token ids with answer-only labels -> bin-packed sequences.

Labels cover exactly the assistant's answer tokens plus the token that closes its turn; every other
position is -100. The prompt is rendered with the chat template's generation prompt and the rest of
the conversation is tokenized after it, so the boundary never falls inside a merged BPE token.

Packing is best-fit decreasing over sample lengths (length-aware: few, nearly full packs). A pack
keeps each sample's length (`seq_lengths`); the collator turns it into position_ids that restart
at 0 per sample, which is what keeps the samples of one pack from attending to each other.
"""

from __future__ import annotations

import bisect
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxsynth.errors import ConfigError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass
class TokenizedSample:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def read_messages(paths: Sequence[str | Path], limit: int | None = None) -> list[list[dict[str, str]]]:
    """Conversations of export folders and JSONL/Parquet files in any export shape (train.sources)."""
    from ctxsynth.train.sources import read_conversations

    return read_conversations(paths, limit)


def end_of_turn_id(tokenizer: Any, token: str | None = None) -> int:
    """The id of the token that ends an assistant turn (the eos token unless named)."""
    name = token or tokenizer.eos_token
    if name is None:
        raise ConfigError("the tokenizer has no eos token: set end_of_turn_token in the config")
    token_id = tokenizer.convert_tokens_to_ids(name)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ConfigError(f"end-of-turn token {name!r} is not in the vocabulary")
    return int(token_id)


def tokenize_chat(messages: Sequence[dict[str, str]], tokenizer: Any, eot_id: int) -> TokenizedSample:
    """Token ids of the whole conversation; labels on the last assistant turn and its end-of-turn token."""
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not full.startswith(prompt):
        raise ConfigError("the chat template does not render the prompt as a prefix of the conversation")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    if eot_id in answer_ids:
        answer_ids = answer_ids[: answer_ids.index(eot_id) + 1]  # drop what follows the turn (a newline)
    else:
        answer_ids = answer_ids + [eot_id]  # templates that end turns with nothing
    return TokenizedSample(
        input_ids=prompt_ids + answer_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + answer_ids,
    )


def _answer_ids(text: str, tokenizer: Any, eot_id: int) -> tuple[list[int], str]:
    """The ids of an assistant turn's rendered text up to its end-of-turn token, and that text."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if eot_id not in ids:
        return ids + [eot_id], text  # templates that end turns with nothing
    eot_text = tokenizer.convert_ids_to_tokens(eot_id)
    cut = text.find(eot_text)
    covered = text[: cut + len(eot_text)] if cut >= 0 else text
    return ids[: ids.index(eot_id) + 1], covered


def tokenize_chat_all_turns(messages: Sequence[dict[str, str]], tokenizer: Any, eot_id: int) -> TokenizedSample:
    """Token ids of the whole conversation; labels on every assistant turn and its end-of-turn token.

    Each assistant turn is located as `tokenize_chat` locates the last one: the conversation before it
    rendered with the generation prompt is a prefix of the conversation through it. Text between
    turns (template markup, user turns) is tokenized in its own segments, always unlabelled."""
    input_ids: list[int] = []
    labels: list[int] = []
    done = ""  # the rendered text already tokenized
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(list(messages[:k]), tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(list(messages[: k + 1]), tokenize=False)
        if not (full.startswith(prompt) and prompt.startswith(done)):
            raise ConfigError("the chat template does not render each turn's prompt as a prefix of the conversation")
        context_ids = tokenizer(prompt[len(done):], add_special_tokens=False)["input_ids"]
        answer_ids, covered = _answer_ids(full[len(prompt):], tokenizer, eot_id)
        input_ids += context_ids + answer_ids
        labels += [IGNORE_INDEX] * len(context_ids) + answer_ids
        done = prompt + covered
    if not labels or all(t == IGNORE_INDEX for t in labels):
        raise ConfigError("a conversation has no assistant turn to train on")
    return TokenizedSample(input_ids=input_ids, labels=labels)


def tokenize_all(
    conversations: Iterable[Sequence[dict[str, str]]], tokenizer: Any, eot_id: int, max_length: int,
    all_turns: bool = False,
) -> tuple[list[TokenizedSample], int]:
    """Tokenize every conversation (loss on the last assistant turn, or on every one with all_turns);
    those longer than max_length are dropped and counted (all of them dropped is an error naming the
    length that would keep them)."""
    kept: list[TokenizedSample] = []
    dropped = longest = 0
    tokenize = tokenize_chat_all_turns if all_turns else tokenize_chat
    for messages in conversations:
        sample = tokenize(messages, tokenizer, eot_id)
        longest = max(longest, len(sample))
        if len(sample) > max_length:
            dropped += 1
            continue
        kept.append(sample)
    if dropped and not kept:
        from ctxsynth.train.sources import TrainDataError

        raise TrainDataError(f"all {dropped} samples are longer than data.max_length={max_length} tokens, so "
                             f"nothing is left to train on; set data.max_length to at least {longest} (the "
                             "longest sample; the export manifest's training.settings gives a value)")
    if dropped:
        log.warning("dropped %d samples longer than max_length=%d tokens", dropped, max_length)
    return kept, dropped


def pack_best_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing bin packing: indices grouped into bins of total length <= capacity.

    Longest first; each goes into the fullest bin that still has room (found by bisection over the
    bins' free space), else opens a new bin. Ties are broken by index, so the result is deterministic.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free_keys: list[tuple[int, int]] = []  # (free space, bin index), sorted
    for i in order:
        size = lengths[i]
        if size > capacity:
            raise ValueError(f"item {i} of length {size} exceeds the capacity {capacity}")
        pos = bisect.bisect_left(free_keys, (size, -1))
        if pos < len(free_keys):
            free, b = free_keys.pop(pos)
        else:
            free, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        bisect.insort(free_keys, (free - size, b))
    return bins


def build_rows(samples: Sequence[TokenizedSample], max_length: int, packing: bool, seed: int) -> list[dict[str, list[int]]]:
    """Dataset rows {input_ids, labels, seq_lengths}: packs (shuffled) or single samples."""
    groups = pack_best_fit([len(s) for s in samples], max_length) if packing else [[i] for i in range(len(samples))]
    random.Random(seed).shuffle(groups)
    rows = []
    for group in groups:
        row: dict[str, list[int]] = {"input_ids": [], "labels": [], "seq_lengths": []}
        for i in group:
            row["input_ids"].extend(samples[i].input_ids)
            row["labels"].extend(samples[i].labels)
            row["seq_lengths"].append(len(samples[i]))
        rows.append(row)
    if rows:
        fill = sum(len(r["input_ids"]) for r in rows) / (len(rows) * max_length)
        log.info("%d samples -> %d rows (packing=%s, fill %.1f%% of %d)", len(samples), len(rows), packing, 100 * fill, max_length)
    return rows
