"""The evaluation tasks that ship as data (`ctxsynth ls`): the LongBench v1 tasks of
templates/longbench.yaml and the offline built-in sets of templates/builtin.yaml, each loaded (and
its metric checked) as the evaluation loads it."""

from __future__ import annotations

from ctxsynth.eval.builtin import BUILTIN_TEMPLATES
from ctxsynth.eval.longbench import load_task_specs


def eval_tasks() -> list[str]:
    """Every shipped task name: LongBench's in table order, then the built-in sets."""
    # builtin_hotpotqa has no entry of its own: it reuses LongBench's hotpotqa template (ctxsynth.eval.builtin)
    return list(load_task_specs()) + ["builtin_hotpotqa"] + list(load_task_specs(base_file=BUILTIN_TEMPLATES))
