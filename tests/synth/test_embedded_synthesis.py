"""The embedded default end to end: two SQuAD seeds synthesised by the real SmolLM2-135M-Instruct
through the transformers backend, every attempt verified and recorded, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

from ctxsynth import config as cfg
from ctxsynth.io import read_shards
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.run import Run, run_all
from ctxsynth.verify.checks import REASONS


def test_smollm2_synthesises_two_seeds_through_transformers(tmp_path: Path) -> None:
    run = Run(cfg.from_dict(RunConfig, {
        "name": "embedded", "out_dir": str(tmp_path), "stages": ["seeds", "synthesize"],
        "seeds": {"source": "squad", "limit": 2},
        "llm": {"backend": "transformers", "model": "smollm2-135m-instruct", "max_tokens": 48, "temperature": 0.7,
                "options": {"batch_size": 2}},
        "synth": {"target_words": 30, "max_attempts": 1},
    }))
    run.prepare()
    run_all(run)
    kept = list(read_shards(run.dir / "synth"))
    rejected = list(read_shards(run.dir / "synth" / "rejected"))
    assert len(kept) + len(rejected) == 2
    for record in kept:
        assert record["context"] and record["provenance"]["model"] == "smollm2-135m-instruct"
    for record in rejected:
        assert record["reason"] in REASONS
        attempt = record["record"]["attempts"][0]
        assert attempt["text"] is not None and attempt["usage"]["completion_tokens"] > 0
    # a rerun is answered by the request cache and writes the same records
    again = Run(run.config)
    again.markers("synthesize").clear()
    run_all(again)
    assert list(read_shards(run.dir / "synth")) == kept
    stats = json.loads((run.dir / "_state" / "synthesize" / "DONE").read_text())
    assert stats["usage"]["requests_cached"] == 2 and stats["usage"]["requests_sent"] == 0
