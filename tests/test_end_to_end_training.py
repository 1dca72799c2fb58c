"""One `ctxsynth run` from seeds to a trained, evaluated model: seeds -> synthesize (the local
OpenAI-protocol server) -> assemble -> export -> train (the embedded SmolLM2, a few CPU steps) ->
eval (trained and base model, transformers backend) -> report. A train killed after its first
checkpoint resumes from it; a finished train is not redone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.io import Markers, write_jsonl
from ctxsynth.testing.openai_server import OpenAIServer
from ctxsynth.testing.responders import context_writer

pytest.importorskip("trl")  # in the fast suite: about 46 s on a quiet 2-core box (the brief's limit was ~60 s)


class _Killed(KeyboardInterrupt):
    """What Ctrl-C (or a scheduler's SIGINT) raises in the middle of training."""


def _config(tmp_path: Path, url: str) -> dict[str, Any]:
    return {
        "name": "e2e", "out_dir": str(tmp_path / "runs"),
        "stages": ["seeds", "synthesize", "assemble", "export", "train", "eval", "report"],
        "seeds": {"source": "jsonl", "path": str(tmp_path / "seeds.jsonl")},
        "llm": {"backend": "openai", "model": "m", "max_tokens": 512, "options": {"base_url": url}},
        "synth": {"target_words": 80},
        "assemble": {"target_tokens": 384, "n_documents": 3},
        "export": {"formats": ["trl_messages"]},
        "train": {"model": "smollm2", "max_steps": 2, "save_steps": 1, "save_total_limit": 1, "bf16": False, "learning_rate": 1e-4,
                  "gradient_checkpointing": False, "attn_implementation": "sdpa", "warmup_ratio": 0.0,
                  "data": {"max_length": 512}},
        "eval": {"items": [str(tmp_path / "items.jsonl")], "model": {"max_model_len": 512}},
    }


def test_one_run_trains_evaluates_and_compares_and_resumes_a_killed_train(tmp_path: Path, monkeypatch) -> None:
    from ctxsynth.train import recipe

    seeds = [{"id": f"q{i}", "instruction": f"Which harbour did captain number {i} sail from?",
              "answer": f"Port Ilvar {i}", "task": "single_doc_qa"} for i in range(6)]
    write_jsonl(tmp_path / "seeds.jsonl", seeds)
    items = [{"id": f"e{i}", "task": "harbours", "metric": "qa_f1", "max_new_tokens": 8, "answers": [f"Port Ilvar {i}"],
              "prompt": f"Captain {i} sailed from Port Ilvar {i} in spring.\n\nWhich harbour did captain {i} sail from?"}
             for i in range(4)]
    write_jsonl(tmp_path / "items.jsonl", items)
    calls: list[Any] = []
    real_build = recipe.build_trainer

    def build(config, **kw):  # records each training, and kills the first one after its first checkpoint
        from transformers import TrainerCallback

        trainer = real_build(config, **kw)
        first = not calls
        real_train = trainer.train

        def train(resume_from_checkpoint=None, **train_kw):
            calls.append(resume_from_checkpoint)
            return real_train(resume_from_checkpoint=resume_from_checkpoint, **train_kw)

        class Kill(TrainerCallback):
            def on_save(self, args, state, control, **cb_kw):
                if first and state.global_step == 1:
                    raise _Killed

        trainer.train = train
        trainer.add_callback(Kill())
        return trainer

    monkeypatch.setattr(recipe, "build_trainer", build)
    path = tmp_path / "run.yaml"
    with OpenAIServer(context_writer) as server:
        path.write_text(yaml.safe_dump(_config(tmp_path, server.url)))
        killed = CliRunner().invoke(app, ["run", str(path)])
        run_dir = tmp_path / "runs" / "e2e"
        assert killed.exit_code == 130, killed.output
        assert (run_dir / "train" / "checkpoint-1").is_dir() and not Markers(run_dir / "_state", "train").stage_done()
        assert Markers(run_dir / "_state", "export").stage_done()

        result = CliRunner().invoke(app, ["run", str(path)])
        assert result.exit_code == 0, result.output
        assert calls[0] is None and str(calls[1]).endswith("checkpoint-1")  # resumed, not restarted
        summary = json.loads((run_dir / "train" / "summary.json").read_text())
        assert summary["global_step"] == 2 and summary["long_samples"] == 6
        assert (run_dir / "train" / "final" / "model.safetensors").exists()

        comparison = json.loads((run_dir / "eval" / "comparison.json").read_text())
        overall = comparison["overall"]
        assert overall["n"] == 4 and comparison["runs"] == {"base": "base", "trained": "trained"}
        for key in ("base", "trained", "difference"):
            assert overall[key]["low"] <= overall[key]["mean"] <= overall[key]["high"]
        facts = {label: json.loads((run_dir / "eval" / label / "scores.json").read_text())["run"]
                 for label in ("trained", "base")}
        assert facts["trained"]["backend"]["model"] == "final"  # the trained weights, not the base model's
        assert facts["base"]["backend"]["model"] != "final" and facts["trained"]["tokenizer"] != facts["base"]["tokenizer"]
        trained_rows = (run_dir / "eval" / "trained" / "predictions.jsonl").read_text().splitlines()
        assert len(trained_rows) == 4 and json.loads(trained_rows[0])["error"] is None
        card = (run_dir / "report" / "README.md").read_text()
        assert "## Trained model vs base" in card and "| all | 4 |" in card
        assert "trained vs base model (x100, 95% intervals, n=4 items)" in result.output

        final = run_dir / "train" / "final" / "model.safetensors"
        before = final.stat().st_mtime_ns
        again = CliRunner().invoke(app, ["run", str(path)])
    assert again.exit_code == 0, again.output
    assert len(calls) == 2 and final.stat().st_mtime_ns == before  # a finished train is not redone
    shutil.rmtree(run_dir / "train")  # a checkpoint with optimizer state is over 1 GB: leave no such tmp folder
