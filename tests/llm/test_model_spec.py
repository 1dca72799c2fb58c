"""One ModelSpec for every chat model a config names: option names and types, the API key check
(generic over backends, so openai-batch is covered) and one build()."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxsynth.cli import app
from ctxsynth.errors import ConfigError, MissingAPIKeyError, RegistryError
from ctxsynth.eval.job import ModelConfig
from ctxsynth.filters.config import FilterLLM
from ctxsynth.llm import ModelSpec
from ctxsynth.llm.cache import CachedBackend
from ctxsynth.llm.fake import FakeBackend
from ctxsynth.pipeline.config import LLMConfig

QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"


def test_every_model_section_is_a_model_spec() -> None:
    for cls in (LLMConfig, FilterLLM, ModelConfig):
        assert issubclass(cls, ModelSpec)


def test_options_are_checked_by_name_and_type() -> None:
    with pytest.raises(ConfigError, match=r"llm.options: \['wordz'\] not accepted by backend 'fake'"):
        ModelSpec("fake", "m", {"wordz": 3}).check("llm")
    with pytest.raises(ConfigError, match=r"judge.options.words: expected an integer"):
        ModelSpec("fake", "m", {"words": "many"}).check("judge")
    with pytest.raises(RegistryError, match="Did you mean 'openai'"):
        ModelSpec("openia", "m").check()
    ModelSpec("fake", "m", {"words": 3}).check()


@pytest.mark.parametrize("backend", ["openai", "openai-batch"])
def test_the_key_check_is_generic_and_local_servers_need_none(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    remote = ModelSpec(backend, "gpt-x", {"base_url": "https://api.example.com/v1"})
    assert remote.key_env() == "OPENAI_API_KEY"
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
        remote.check("llm", need_key=True)
    assert ModelSpec(backend, "gpt-x", {"api_key_env": "MY_KEY"}).key_env() == "MY_KEY"
    assert ModelSpec(backend, "m", {"base_url": "http://127.0.0.1:8000/v1"}).key_env() is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    remote.check("llm", need_key=True)
    assert ModelSpec("fake", "m").key_env() is None


def test_build_wraps_the_request_cache_when_asked(tmp_path: Path) -> None:
    spec = ModelSpec("fake", "m", {"words": 5})
    assert isinstance(spec.build(), FakeBackend)
    cached = spec.build(tmp_path / "cache.sqlite")
    assert isinstance(cached, CachedBackend) and (tmp_path / "cache.sqlite").exists()
    cached.close()
    assert FilterLLM(backend="fake", model="m", max_tokens=7).params(seed=3).max_tokens == 7


def test_validate_checks_every_spec_and_warns_on_missing_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    runner = CliRunner()
    bad_judge = runner.invoke(app, ["validate", str(QUICKSTART), "stages=[seeds,filter,synthesize]",
                                    "filters.judge.enabled=true", "filters.judge.llm.backend=fakee"])
    assert bad_judge.exit_code == 2 and "Did you mean 'fake'" in bad_judge.output
    batch = runner.invoke(app, ["validate", str(QUICKSTART), "llm.backend=openai-batch", "llm.model=gpt-x",
                                "llm.options={}"])
    assert batch.exit_code == 0, batch.output
    assert "llm: backend 'openai-batch' needs an API key" in batch.output and "OPENAI_API_KEY" in batch.output
