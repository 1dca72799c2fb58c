"""synth.prefill: the context task starts the reply with its label (ctxsynth.synth.tasks).

Protects: the prompt ends with the open assistant turn, the reply is read as label + continuation
(a repeated label dropped, an echoed placeholder or an empty reply still a parse failure), the
option belongs to the context task, and a backend that cannot continue a reply is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxsynth.errors import ConfigError
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.preflight import validate_run
from ctxsynth.pipeline.run import Run
from ctxsynth.records import Seed
from ctxsynth.synth.config import SynthConfig
from ctxsynth.synth.tasks import ContextSynthesis, ParseError

SEED = Seed(id="s1", task="squad", instruction="Which river runs through Lyon?", answer=["the Rhône"])


def test_the_prompt_ends_with_the_label_as_an_open_assistant_turn() -> None:
    plain = ContextSynthesis(target_words=50).prompt(SEED)
    prefilled = ContextSynthesis(target_words=50, prefill=True).prompt(SEED)
    assert prefilled[:-1] == plain
    assert prefilled[-1] == {"role": "assistant", "content": "Context:"}


def test_the_reply_is_read_after_the_label() -> None:
    task = ContextSynthesis(prefill=True)
    assert task.parse(" Lyon lies on the Rhône.") == "Lyon lies on the Rhône."
    assert task.parse("\n**Context:** Lyon lies on the Rhône.") == "Lyon lies on the Rhône."  # repeated label
    for bad in ("   ", " [MISSING] Lyon"):
        with pytest.raises(ParseError):
            task.parse(bad)
    with pytest.raises(ParseError, match='no "Context:" label'):
        ContextSynthesis().parse(" Lyon lies on the Rhône.")  # without prefill the label is required


def test_prefill_is_a_context_task_option_and_needs_a_prefilling_backend(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synth.prefill is an option of the context task"):
        SynthConfig(task="instruction", prefill=True)
    config = RunConfig(name="p", synth=SynthConfig(prefill=True, target_words=50))
    assert isinstance(validate_run(Run(config, tmp_path)), list)  # transformers (the default) can
    config.llm.backend = "openai"
    with pytest.raises(ConfigError, match="synth.prefill needs a backend"):
        validate_run(Run(config, tmp_path))


def test_the_demo_config_validates_and_refuses_prefill_on_an_api_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ctxsynth.cli import app

    demo = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    root = demo.parents[1]
    runner = CliRunner()
    monkeypatch.chdir(root)  # the prompt file is named relative to the repository root, where `make demo` runs
    ok = runner.invoke(app, ["validate", str(demo)])
    assert ok.exit_code == 0, ok.output
    api = runner.invoke(app, ["validate", str(demo), "llm.backend=openai", "llm.options={}"])
    assert api.exit_code == 2 and "synth.prefill needs a backend" in api.output
    bad = runner.invoke(app, ["validate", str(demo), "filters.wellformed.max_answer_words=0"])
    assert bad.exit_code == 2 and "filters.wellformed.max_answer_words must be a whole number >= 1" in bad.output
