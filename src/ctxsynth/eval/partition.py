"""The held-out rule that keeps built-in evaluation sets apart from everything used as seeds.

A unit is held out (evaluation only) when the SHA-1 of its key, read as an integer, is odd (the
last hex digit of the digest is odd); seed built-ins must use only the other units. Keys:
- SQuAD v2 dev: the article title, so a held-out article shares no paragraph with any seed;
- HotpotQA dev-distractor: the question `_id`.
The rule depends on nothing but the key: any process, shard or version computes the same split.
"""

from __future__ import annotations

import hashlib

HELDOUT_RULE = "sha1(key) odd; key = SQuAD article title / HotpotQA _id; seeds use sha1(key) even"


def is_heldout(key: str) -> bool:
    """True when `key` belongs to the evaluation-only partition."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % 2 == 1


def squad_is_heldout(article_title: str) -> bool:
    return is_heldout(article_title)


def hotpotqa_is_heldout(question_id: str) -> bool:
    return is_heldout(question_id)
