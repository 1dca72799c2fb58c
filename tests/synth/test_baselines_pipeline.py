"""Both synthesis baselines end to end through the stage runner against the local OpenAI-protocol
server: seeds -> synthesize -> assemble -> export, ending in trainer-ready files that have the same
shape as context-synthesis output (like for like)."""

from __future__ import annotations

import json
from pathlib import Path

from ctxsynth import config as cfg
from ctxsynth.eval.metrics import contains_normalized
from ctxsynth.io import read_shards
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.run import Run, run_all
from ctxsynth.records import synthesized_from_dict
from ctxsynth.seeds.builtin import paul_graham_text
from ctxsynth.testing.baseline_responders import instruction_writer, multidoc_writer
from ctxsynth.testing.openai_server import OpenAIServer

STAGES = ["seeds", "synthesize", "assemble", "export"]


def _run(tmp_path: Path, url: str, name: str, seeds: dict, synth: dict, assemble: dict) -> Path:
    data = {
        "name": name, "out_dir": str(tmp_path / "runs"), "seed": 3, "shards": 2, "stages": STAGES,
        "seeds": seeds, "synth": synth, "assemble": assemble,
        "llm": {"backend": "openai", "model": "m", "max_tokens": 2048,
                "options": {"base_url": url, "backoff_base_s": 0.01}},
        "export": {"formats": ["trl_messages", "context_free"]},
    }
    run = Run(cfg.from_dict(RunConfig, data))
    run.prepare()
    run_all(run)
    return run.dir


def _exported(run_dir: Path, fmt: str) -> list[dict]:
    return [json.loads(line) for f in sorted((run_dir / "export" / fmt).glob("*.jsonl"))
            for line in f.read_text().splitlines()]


def test_instruction_baseline_runs_end_to_end_from_long_seed_documents(tmp_path: Path) -> None:
    essays = paul_graham_text()
    rows = [{"id": f"d{i}", "task": "single_doc_qa", "instruction": f"Original question {i}?",
             "answer": f"original answer {i}", "context": essays[i * 9000 : i * 9000 + 8000]} for i in range(8)]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with OpenAIServer(instruction_writer) as server:
        run_dir = _run(tmp_path, server.url, "instr", {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")},
                       {"task": "instruction", "chunk_words": 300}, {"target_tokens": 2048})
    records = [synthesized_from_dict(d) for d in read_shards(run_dir / "synth")]
    assert len(records) == 8
    by_id = {r["id"]: r for r in rows}
    for rec in records:
        original = by_id[rec.id]
        assert rec.context in original["context"]  # a contiguous piece of the seed's own document
        assert 300 <= len(rec.context.split()) <= 400
        assert rec.provenance["original_seed"] == {"instruction": original["instruction"],
                                                    "answer": original["answer"]}
        assert rec.provenance["task"] == "instruction" and rec.verdicts["support"]["supported"]
        assert rec.seed.instruction.startswith("In the document") and contains_normalized(rec.context, rec.seed.answer)
    samples = list(read_shards(run_dir / "assemble"))
    exported = _exported(run_dir, "trl_messages")
    assert len(samples) == len(exported) == 8
    synthetic = {r.seed.answer for r in records}
    assert all(s["tokens"]["total"] <= 2048 and s["meta"]["instruction"].startswith("In the document") for s in samples)
    assert {e["messages"][1]["content"] for e in exported} == synthetic
    assert all("In the document" in e["messages"][0]["content"] for e in exported)
    assert len(_exported(run_dir, "context_free")) == 8


def test_multidoc_baseline_runs_end_to_end_on_hotpotqa_and_places_documents_apart(tmp_path: Path) -> None:
    with OpenAIServer(multidoc_writer) as server:
        run_dir = _run(tmp_path, server.url, "multi", {"source": "hotpotqa", "limit": 12},
                       {"task": "multidoc", "target_words": 240}, {"n_documents": 8})
    records = {d["id"]: synthesized_from_dict(d) for d in read_shards(run_dir / "synth")}
    rejected = list(read_shards(run_dir / "synth" / "rejected"))
    assert len(records) >= 10, [r["reason"] for r in rejected]
    samples = list(read_shards(run_dir / "assemble"))
    assert len(samples) == len(records)
    for sample in samples:
        rec = records[sample["id"]]
        assert 2 <= len(rec.documents) <= 4 and rec.context == "\n\n".join(rec.documents)
        assert rec.verdicts["support"]["supported"] and not any(rec.verdicts["carries_all_evidence"])
        user = sample["messages"][0]["content"]
        slots = sample["gold_indices"]
        assert len(slots) == len(rec.documents) and sample["n_documents"] == 8
        assert all(b - a > 1 for a, b in zip(slots, slots[1:]))  # distinct, never adjacent
        for doc, (start, end) in zip(rec.documents, sample["meta"]["gold_char_spans"], strict=True):
            assert user.count(doc) == 1 and user[start:end] == doc
        assert not any(d.startswith(rec.id + "#") for d in sample["distractor_ids"])
    assert len(_exported(run_dir, "trl_messages")) == len(samples)


def test_shipped_baseline_configs_load_and_build_their_tasks() -> None:
    from ctxsynth.synth.tasks import build_task

    root = Path(__file__).resolve().parents[2] / "configs"
    for name, task in (("baseline_instruction.yaml", "instruction"), ("multidoc_hotpotqa.yaml", "multidoc")):
        loaded = cfg.load(RunConfig, root / name)
        assert loaded.llm.backend == "openai" and build_task(loaded.synth).name == task
