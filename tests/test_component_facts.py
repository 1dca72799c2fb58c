"""Facts declared by their owners and checked at load: stages, filters, backends, prices, the keys
that change no output, eval metrics, and lengths that cannot be trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ctxsynth import config as cfg
from ctxsynth.cli import app
from ctxsynth.errors import ConfigError
from ctxsynth.eval.job import EvalConfig, ModelConfig, collect_items
from ctxsynth.eval.longbench import load_task_specs
from ctxsynth.filters.closed_book import ClosedBookFilter
from ctxsynth.filters.decontam import DecontamFilter
from ctxsynth.filters.dedup import DedupFilter
from ctxsynth.filters.judge import JudgeFilter
from ctxsynth.filters.reliance import RelianceFilter
from ctxsynth.filters.wellformed import WellFormedFilter
from ctxsynth.llm import BACKENDS
from ctxsynth.llm.prices import Price
from ctxsynth.pipeline.api import Pipeline
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.preflight import model_specs, validate_run
from ctxsynth.pipeline.rerun import NO_OUTPUT_KEYS, first_affected
from ctxsynth.pipeline.run import Run
from ctxsynth.pipeline.stages import RECORD_STAGES, STAGES

ROOT = Path(__file__).resolve().parents[1]


def test_stages_declare_records_and_models() -> None:
    assert RECORD_STAGES == ("seeds", "filter", "synthesize", "assemble")
    config = RunConfig(name="t")
    config.filters.closed_book.enabled = config.filters.judge.enabled = False
    assert list(model_specs(config)) == ["llm"]
    config.filters.closed_book.enabled = config.filters.judge.enabled = True
    assert list(model_specs(config)) == ["filters.closed_book.llm", "filters.judge.llm", "llm"]  # in run order
    assert list(model_specs(config, ["synthesize"])) == ["llm"]
    config.synth.task = "human"  # the human task asks no model
    assert "llm" not in model_specs(config)
    assert all(s.function is not None for s in STAGES)  # every body the table names imports


def test_the_api_refuses_the_records_of_a_stage_that_writes_none(tmp_path: Path) -> None:
    pipe = Pipeline.from_dict({"name": "t", "out_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="writes no records"):
        pipe.records("export")


def test_only_dedup_needs_the_global_pass() -> None:
    assert DedupFilter.global_pass is True
    per_record = (WellFormedFilter, DecontamFilter, ClosedBookFilter, JudgeFilter, RelianceFilter)
    assert [f.global_pass for f in per_record] == [False] * len(per_record)


def test_backends_declare_their_capabilities_on_the_class() -> None:
    fake, openai, batch = (BACKENDS.get(n) for n in ("fake", "openai", "openai-batch"))
    assert (fake.hosted, fake.batch, fake.prefill, fake.raw_prompts) == (False, False, False, False)
    assert fake.concurrency({}) is None
    assert (openai.hosted, openai.batch) == (True, False)
    assert openai.concurrency({}) == 16 and openai.concurrency({"max_concurrency": 4}) == 4
    assert (batch.hosted, batch.batch) == (True, True)


def test_a_price_is_checked_when_the_config_loads() -> None:
    loaded = cfg.from_dict(RunConfig, {"name": "t", "report": {"prices": {"m": {"input_per_mtok": 1,
                                                                                "output_per_mtok": 2}}}})
    assert loaded.report.prices["m"] == Price(1.0, 2.0) and loaded.report.prices["m"].cost(10**6, 10**6) == 3.0
    with pytest.raises(ConfigError, match="output_per_mtok"):
        cfg.from_dict(RunConfig, {"name": "t", "report": {"prices": {"m": {"input_per_mtok": 1}}}})


@pytest.mark.parametrize("key", ["out_dir", "name", "max_consecutive_failures", "llm.max_cost_usd", "executor",
                                 "workers", "shard_retries", "ray.address", "ray.num_cpus", "shards"])
def test_one_list_of_keys_that_change_no_output_bytes(key: str, tmp_path: Path) -> None:
    values = {"out_dir": str(tmp_path / "elsewhere"), "name": "other", "max_consecutive_failures": 3,
              "llm.max_cost_usd": 5.0, "executor": "serial", "workers": 3, "shard_retries": 4,
              "ray.address": "auto", "ray.num_cpus": 2, "shards": 4}
    base = {"name": "t", "out_dir": str(tmp_path)}
    before = Run(cfg.from_dict(RunConfig, base)).config_hash()
    after = Run(cfg.from_dict(RunConfig, cfg.apply_overrides(base, [f"{key}={values[key]}"]))).config_hash()
    assert before == after
    if key != "shards":  # the shard count reruns the seeds stage (the folders' layout), nothing else does
        assert key.split(".")[0] in {k.split(".")[0] for k in NO_OUTPUT_KEYS}
        assert first_affected([key], list(RunConfig(name="t").stages), list(RunConfig(name="t").stages)) is None


def test_a_target_longer_than_the_training_length_fails_validation(tmp_path: Path) -> None:
    stages = ["seeds", "filter", "synthesize", "assemble", "export", "train"]
    config = cfg.from_dict(RunConfig, {"name": "t", "out_dir": str(tmp_path), "stages": stages,
                                       "assemble": {"target_tokens": [2000, 9000]},
                                       "train": {"data": {"max_length": 8192}}})
    with pytest.raises(ConfigError, match=r"assemble.target_tokens=\[2000, 9000\].*train.data.max_length=8192"):
        validate_run(Run(config))
    config.assemble.target_tokens = 8192
    validate_run(Run(config))  # as long as the training length: fine


def test_an_unknown_metric_is_a_config_error_when_the_task_loads(tmp_path: Path) -> None:
    templates = tmp_path / "templates.yaml"
    templates.write_text(yaml.safe_dump({"qasper": {"metric": "qa_f2"}}))
    with pytest.raises(ConfigError, match="task 'qasper'.*unknown metric 'qa_f2'.*Did you mean 'qa_f1'"):
        load_task_specs(templates)
    items = tmp_path / "items.jsonl"
    item = {"id": "a", "task": "mine", "prompt": "p", "answers": ["x"], "metric": "exact", "max_new_tokens": 4}
    items.write_text(json.dumps(item) + "\n")
    job = EvalConfig(name="x", items=[str(items)], model=ModelConfig(backend="fake", model="m"))
    with pytest.raises(ConfigError, match="eval task 'mine'.*unknown metric 'exact'"):
        collect_items(job, tmp_path)  # before any model is built


def test_ls_lists_the_eval_tasks() -> None:
    out = CliRunner().invoke(app, ["ls"]).output
    line = next(x for x in out.splitlines() if x.startswith("eval tasks: "))
    assert {"narrativeqa", "hotpotqa", "builtin_squad", "builtin_hotpotqa"} <= set(line[12:].split(", "))
