"""Where the gold document goes: a uniform slot (paper), or the slot closest to a target depth.

Depth targets come from a fixed value, a grid cell picked by hashing the sample id (balanced across
samples in expectation, and independent of shard layout, unlike a running counter), or a
Beta(c, c) draw that favours the middle. Depth = tokens before the gold / tokens of the prompt.
Several gold documents (multi-document synthesis) are spread apart instead: distinct gaps between
distractors, so no two golds touch while there are distractors enough to separate them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ctxsynth.assemble.config import AssembleConfig
from ctxsynth.rng import derive_seed


def target_depth(config: AssembleConfig, rng: random.Random, run_seed: int, sample_id: str) -> float | None:
    """The depth this sample aims for, or None for a uniform random slot."""
    if config.position == "fixed":
        return config.depth
    if config.position == "grid":
        cell = derive_seed(run_seed, "assemble-grid", sample_id) % config.grid_points
        return cell / (config.grid_points - 1)
    if config.position == "middle":
        return rng.betavariate(config.middle_concentration, config.middle_concentration)
    return None


def choose_slot(
    depth: float | None, rng: random.Random, costs: Sequence[int], head: int, gold: int, tail: int
) -> int:
    """Slot index among len(costs) + 1 places; costs are the estimated tokens of each distractor
    (with its separator), head/tail the prompt tokens before/after the documents."""
    if depth is None:
        return rng.randrange(len(costs) + 1)
    prompt = head + sum(costs) + gold + tail
    best, best_error, start = 0, float("inf"), head
    for slot in range(len(costs) + 1):
        error = abs(start / max(prompt, 1) - depth)
        if error < best_error:
            best, best_error = slot, error
        if slot < len(costs):
            start += costs[slot]
    return best


def spread_gaps(depth: float | None, rng: random.Random, n_distractors: int, n_golds: int) -> list[int]:
    """Insertion gaps (0..n_distractors, non-decreasing) for n_golds gold documents kept in order.

    Uniform mode draws distinct gaps at random; a depth mode spreads the golds evenly from the start
    to the end of the context (a multi-hop sample has no single depth). Gaps repeat only when there
    are fewer distractors than needed to separate every pair of golds."""
    places = n_distractors + 1
    if n_golds <= places:
        if depth is None:
            return sorted(rng.sample(range(places), n_golds))
        if n_golds == 1:
            return [round(depth * n_distractors)]
        return [round(j * n_distractors / (n_golds - 1)) for j in range(n_golds)]
    return sorted(j * places // n_golds for j in range(n_golds))
