"""The stage table is the one list of stages, and run_sharded owns the skip / write / mark / count loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.io import read_jsonl, shard_name
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.contract import ShardOutput, run_sharded
from ctxsynth.pipeline.run import Run
from ctxsynth.pipeline.stages import STAGE_NAMES, STAGES, stage_folder
from ctxsynth.records import Rejected


def test_the_table_drives_folders_verbs_and_ls(tmp_path: Path) -> None:
    run = Run(RunConfig(name="t", out_dir=str(tmp_path)))
    assert [s.name for s in STAGES] == list(STAGE_NAMES)
    assert list(RunConfig(name="t").stages) == [s.name for s in STAGES if not s.opt_in]  # train, eval: when listed
    assert run.stage_dir("synthesize") == tmp_path / "t" / "synth" and stage_folder("seeds") == "seeds"
    assert run.input_dir("synthesize") == tmp_path / "t" / "filter"
    no_filter = Run(RunConfig(name="t", out_dir=str(tmp_path), stages=["seeds", "synthesize"]))
    assert no_filter.input_dir("synthesize") == tmp_path / "t" / "seeds"
    listing = CliRunner().invoke(app, ["ls"]).output
    assert f"stages: {', '.join(STAGE_NAMES)}" in listing


def test_stages_does_not_import_the_runner() -> None:
    code = "import sys, ctxsynth.pipeline.stages; print('ctxsynth.pipeline.run' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_sharded_skips_finished_shards_and_counts(tmp_path: Path) -> None:
    run = Run(RunConfig(name="t", out_dir=str(tmp_path), shards=3))
    calls: list[int] = []

    def work(i: int) -> ShardOutput:
        calls.append(i)
        rejected = [Rejected(f"r{i}", "assemble", "too_long", "", {})] if i else []
        return ShardOutput([{"id": f"k{i}-{j}"} for j in range(i + 1)], rejected, {"seconds": 1.5})

    run.markers("assemble").mark_shard(1, {"n_in": 7, "n_out": 7})  # finished earlier: not redone
    summary = run_sharded(run, "assemble", 3, work)
    assert calls == [0, 2]
    assert summary == {"n_in": 1 + 7 + 4, "n_out": 1 + 7 + 3, "seconds": 3.0, "dropped_too_long": 1}
    assert [d["id"] for d in read_jsonl(run.stage_dir("assemble") / shard_name(2))] == ["k2-0", "k2-1", "k2-2"]
    assert run.markers("assemble").stage_done()
