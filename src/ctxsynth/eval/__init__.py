"""Evaluation: metrics, LongBench-format tasks, offline built-in sets, the runner and comparisons.

metrics      pure scoring functions, looked up by EvalItem.metric
longbench    LongBench v1 loader, per-task templates (templates/longbench.yaml) and output budgets
builtin      held-out HotpotQA and padded SQuAD sets (partition.py keeps them apart from seeds)
truncation   fit a prompt to the model window exactly in tokens
runner       evaluate(items, backend, ...) -> predictions.jsonl, scores.json, scores.md, plots
scores/tables/plots/compare   aggregation, markdown, NIAH heatmaps and run comparisons
"""
