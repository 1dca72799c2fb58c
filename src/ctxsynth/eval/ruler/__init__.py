"""RULER (Hsieh et al., 2024): its 13 synthetic tasks from its own generators, scored as it scores them.

The generators and the scorer are those of the installed `nvidia-long-context-eval` package, NVIDIA's
packaged RULER: ctxsynth runs its generator scripts as RULER's `data/prepare.py` runs them (same
arguments, seeds and sample counts) and turns each sample into an EvalItem, so `ctxsynth eval`
generates the answers with any backend that takes plain-text prompts; the per-sample metrics are the
package's own `string_match_all` / `string_match_part`.

tasks      the 13 task configs (synthetic.yaml + constants), templates per mode (base / chat)
generate   run the generators for a tokenizer, lengths and modes; cached; EvalItems
score      RULER's postprocessing and metrics, the task x length table, effective length, intervals
compare    two runs' RULER tables side by side with paired differences
"""

from ctxsynth.eval.ruler.tasks import RULER_TASKS, THRESHOLD, RulerSets

__all__ = ["RULER_TASKS", "THRESHOLD", "RulerSets"]
