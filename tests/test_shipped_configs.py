"""Every shipped config under configs/ is validated as the kind it is, and the run and NIAH configs
are started (their first stage, shrunk), so none can rot unnoticed. Configs whose inputs an earlier
documented step makes (Table 3's seed files) are started on a two-seed file in their place.
Training and evaluation configs are validated only: starting them means loading and running a model
(tests/test_end_to_end_training.py and tests/test_shipped_end_to_end.py do that for the embedded one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ctxsynth import config as cfg
from ctxsynth.cli import app
from ctxsynth.eval.job import EvalConfig
from ctxsynth.niah.config import NiahConfig
from ctxsynth.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "accelerate" not in p.parts)
KINDS = {"train": TrainConfig, "eval": EvalConfig, "niah": NiahConfig}


def _kind(path: Path) -> str:
    """The one kind of config a file is: a run config has pipeline sections; the others load as theirs."""
    data = yaml.safe_load(path.read_text()) or {}
    if {"stages", "seeds", "llm", "synth", "assemble"} & set(data):
        return "run"
    loads = [k for k, cls in KINDS.items() if _loads(cls, path)]
    assert len(loads) == 1, f"{path}: loads as {loads or 'nothing'}"
    return loads[0]


def _loads(cls: type, path: Path) -> bool:
    try:
        cfg.load(cls, path)
    except Exception:
        return False
    return True


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT / "configs"))


@pytest.mark.parametrize("path", CONFIGS, ids=_id)
def test_every_shipped_config_validates(path: Path) -> None:
    kind = _kind(path)
    if kind == "run":
        result = CliRunner().invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, result.output
    else:
        cfg.load(KINDS[kind], path)  # unknown keys and bad values raise


def test_the_accelerate_configs_name_their_backend() -> None:
    for path in (ROOT / "configs" / "accelerate").glob("*.yaml"):
        assert (yaml.safe_load(path.read_text()) or {}).get("distributed_type"), path


RUNS = [p for p in CONFIGS if _kind(p) == "run"]
NIAH = [p for p in CONFIGS if _kind(p) == "niah"]


@pytest.mark.parametrize("path", RUNS, ids=_id)
def test_every_run_config_starts(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # relative paths in configs resolve against the checkout, as in the README
    data = yaml.safe_load(path.read_text())
    overrides = [f"out_dir={tmp_path}", "seeds.limit=2"]
    seeds = data.get("seeds") or {}
    if seeds.get("path") and not (ROOT / seeds["path"]).exists():  # made by an earlier step (benchmarks/table3.sh)
        stand_in = tmp_path / "seeds.jsonl"
        stand_in.write_text("".join(json.dumps({"id": f"s{i}", "instruction": f"Where was ship {i} built?",
                                                "answer": f"Harbour {i}", "context": f"Ship {i} was built in Harbour {i}.",
                                                "task": "single_doc_qa"}) + "\n" for i in range(2)))
        overrides.append(f"seeds.path={stand_in}")
    result = CliRunner().invoke(app, ["seeds", str(path), *overrides])
    assert result.exit_code == 0, result.output
    assert "seeds: done" in result.output


@pytest.mark.parametrize("path", NIAH, ids=_id)
def test_every_niah_config_starts(path: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    overrides = []
    if data.get("train", {}) is not None:
        overrides.append("train.samples_per_variant=1")
    if data.get("test"):
        test = data["test"]
        overrides += ["test.samples_per_cell=1", f"test.lengths=[{min(test.get('lengths') or [1024])}]",
                      f"test.depths=[{(test.get('depths') or [0.5])[0]}]"]
    result = CliRunner().invoke(app, ["niah", str(path), *overrides, "--out", str(tmp_path / "niah")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "niah" / "summary.json").read_text())
