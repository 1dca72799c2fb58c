"""RULER's task table, read from the installed package, and the prompt templates of each mode.

`synthetic.yaml` names the 13 tasks and their generator arguments; `data/synthetic/constants.py`
gives each generator's task template, answer prefix and output budget; `data/template.py` holds
RULER's model templates. `task_config` merges them exactly as `data/prepare.py` does.

Template modes (labelled in every table):
  base   RULER's "base" template: the task text and its answer prefix, no chat template
  chat   the model's own chat template (from its tokenizer) around the task text, the answer
         prefix after the generation prompt: what RULER does with its model templates, built
         from the model instead of RULER's fixed list
  any name of RULER's template.py (meta-chat, vicuna-chat, ...) uses that template as RULER does
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctxsynth.assets import package_dir
from ctxsynth.errors import ConfigError

# RULER's threshold for the effective length: Llama-2-7B(-chat)'s average over the 13 tasks at 4K,
# 85.6, from the results table of RULER's README ("the performance of Llama2-7b at 4K").
THRESHOLD = 85.6
THRESHOLD_SOURCE = "Llama-2-7B at 4K in RULER's README (85.6)"
RANDOM_SEED = 42  # prepare.py: random_seed = 42 + chunk_idx, one chunk
NUM_SAMPLES = 500  # prepare.py's default and RULER's run.sh
SUBSET = "validation"
DEFAULT_LENGTHS = [4096, 8192, 16384, 32768]
MAX_LENGTH = 131072
# the 13 tasks in synthetic.yaml's order
RULER_TASKS: tuple[str, ...] = (
    "niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
    "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2",
)
CHAT_MODE = "chat"
SENTINEL = "\x00RULER-TASK\x00"


@dataclass
class RulerSets:
    """The `ruler:` section of an eval config: which tasks, lengths, samples and template modes."""

    tasks: list[str] = field(default_factory=list)  # RULER task names or ["all"]; empty: no RULER
    lengths: list[int] = field(default_factory=lambda: list(DEFAULT_LENGTHS))  # max_seq_length, tokens
    num_samples: int = NUM_SAMPLES  # per task and length; RULER's seed, so fewer = RULER's first N
    modes: list[str] = field(default_factory=lambda: ["base", CHAT_MODE])
    tokenizer: str | None = None  # a Hugging Face tokenizer folder; default: model.tokenizer
    cache_dir: str | None = None  # generated data; default <CTXSYNTH_CACHE>/ruler
    remove_newline_tab: bool = False  # prepare.py's --remove_newline_tab

    def __post_init__(self) -> None:
        if self.tasks == ["all"]:
            self.tasks = list(RULER_TASKS)
        unknown = [t for t in self.tasks if t not in RULER_TASKS]
        if unknown or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"ruler.tasks: unknown or repeated {unknown or self.tasks}; RULER's tasks are "
                              f"{', '.join(RULER_TASKS)} (or [all])")
        if not self.lengths or any(n < 512 or n > MAX_LENGTH for n in self.lengths):
            raise ConfigError(f"ruler.lengths must be token counts in [512, {MAX_LENGTH}], got {self.lengths}")
        if self.num_samples < 1:
            raise ConfigError(f"ruler.num_samples must be >= 1, got {self.num_samples}")
        if not self.tasks:
            return
        known = [CHAT_MODE, *ruler_templates()]
        bad = [m for m in self.modes if m not in known]
        if bad or not self.modes or len(set(self.modes)) != len(self.modes):
            raise ConfigError(f"ruler.modes: {bad or self.modes} not valid; choose distinct names among {', '.join(known)}")


@functools.lru_cache(maxsize=1)
def ruler_dir() -> Path:
    """The installed long_context_eval package (RULER)."""
    return package_dir("long_context_eval")


@functools.lru_cache(maxsize=1)
def ruler_templates() -> dict[str, str]:
    from long_context_eval.data.template import Templates

    return dict(Templates)


@functools.lru_cache(maxsize=1)
def _generator_tasks() -> dict[str, dict[str, Any]]:
    from long_context_eval.data.synthetic.constants import TASKS

    return {k: dict(v) for k, v in TASKS.items()}


def task_config(task: str) -> dict[str, Any]:
    """prepare.py's config of one task: synthetic.yaml's entry updated with the generator's
    constants (task, args, tokens_to_generate, template, answer_prefix)."""
    customized = yaml.safe_load((ruler_dir() / "synthetic.yaml").read_text(encoding="utf-8"))
    if task not in customized:
        raise ConfigError(f"{task} is not a task of RULER's synthetic.yaml")
    config = dict(customized[task])
    config.update(_generator_tasks()[config["task"]])
    return config


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def chat_wrapper(tokenizer: Any) -> tuple[str, str]:
    """The text the model's chat template puts before and after one user message (generation
    prompt included), with braces escaped for the generators' str.format."""
    rendered = tokenizer.render_chat([{"role": "user", "content": SENTINEL}], add_generation_prompt=True)
    if rendered.count(SENTINEL) != 1:
        raise ConfigError(f"tokenizer {tokenizer.name}: its chat template does not render the user message once")
    before, after = rendered.split(SENTINEL)
    # RULER's templates hold no BOS text: the tokenizer adds BOS when the prompt is encoded. A chat
    # template that writes it (Llama 3's) would give two, so its written BOS goes when the
    # tokenizer adds one itself.
    hf = tokenizer.hf
    bos = getattr(hf, "bos_token", None)
    if bos and before.startswith(bos) and hf.bos_token_id is not None:
        ids = hf("a")["input_ids"]
        if ids and ids[0] == hf.bos_token_id:
            before = before[len(bos):]
    return _escape(before), _escape(after)


def mode_template(config: Mapping[str, Any], mode: str, tokenizer: Any = None) -> str:
    """The --template prepare.py passes to the generator: the model template around the task
    template, then the answer prefix."""
    task_template = str(config["template"])
    if mode == CHAT_MODE:
        if tokenizer is None or not getattr(getattr(tokenizer, "hf", None), "chat_template", None):
            raise ConfigError("ruler mode 'chat' needs a Hugging Face tokenizer with a chat template; "
                              "use mode 'base' for a model without one")
        before, after = chat_wrapper(tokenizer)
        wrapped = before + task_template + after
    else:
        wrapped = ruler_templates()[mode].format(task_template=task_template)
    return wrapped + str(config.get("answer_prefix", ""))
