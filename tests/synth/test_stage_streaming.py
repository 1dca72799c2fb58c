"""The synthesize stage streams: a failed attempt's regeneration goes out at once (no barrier
between attempt rounds), and the shard's output does not depend on the order replies arrive in."""

from __future__ import annotations

import json

from ctxsynth.llm.base import SamplingParams
from ctxsynth.llm.openai.backend import OpenAIBackend
from ctxsynth.records import Seed, to_dict
from ctxsynth.synth.stage import SynthConfig, synthesize_shard, synthesized_to_dict
from ctxsynth.synth.tasks import ContextSynthesis
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import document, prompt_fields
from ctxsynth.testing.scripting import Reply
from ctxsynth.verify.checks import VerifyConfig

TARGET = 100


def writer(body: dict) -> Reply:
    """A good document, except an unlabeled one (parse failure) for every seed's first attempt
    whose question number is divisible by 5."""
    f = prompt_fields(body)
    good = document(f["question"], f["answer"], TARGET, f["seed"])
    number = int(f["question"].split()[1])
    first = body["seed"] == FIRST_SEEDS.get(number)
    ANSWERED.append((number, first))
    return Reply(good if first and number % 5 == 0 else "Context: " + good)


FIRST_SEEDS: dict[int, int] = {}
ANSWERED: list[tuple[int, bool]] = []  # (question number, first attempt?) in the order answered


def run(seeds: list[Seed], concurrency: int) -> tuple[list[str], list[str], list]:
    with OpenAIServer(writer, latency_s=0.05) as server:
        backend = OpenAIBackend("m", base_url=server.url, max_concurrency=concurrency, max_retries=0)
        result = synthesize_shard(seeds, ContextSynthesis(target_words=TARGET), backend, SamplingParams(max_tokens=512),
                                  SynthConfig(target_words=TARGET, max_attempts=2), VerifyConfig(), run_seed=3)
        records = server.records()
    kept = [json.dumps(synthesized_to_dict(r), sort_keys=True) for r in result.kept]
    rejected = [json.dumps(to_dict(r), sort_keys=True) for r in result.rejected]
    return kept, rejected, records


def test_regenerations_overlap_first_attempts_and_the_output_is_order_free() -> None:
    from ctxsynth.rng import derive_seed

    seeds = [Seed(id=f"s{i}", task="squad", instruction=f"question {i} names which harbour?", answer=f"Port {i}")
             for i in range(30)]
    FIRST_SEEDS.update({i: derive_seed(3, "synthesize", f"s{i}", 1) for i in range(30)})
    ANSWERED.clear()
    kept, rejected, records = run(seeds, concurrency=3)
    assert len(kept) == 30 and rejected == []
    assert len(records) == 36 and sorted(n for n, first in ANSWERED if not first) == [0, 5, 10, 15, 20, 25]
    # seed 0's regeneration was answered long before the last first attempt (no barrier between rounds)
    assert ANSWERED.index((0, False)) < ANSWERED.index((29, True)) - 10
    kept_serial, rejected_serial, _ = run(seeds, concurrency=1)
    assert (kept_serial, rejected_serial) == (kept, rejected)
