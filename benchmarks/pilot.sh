#!/usr/bin/env bash
# The NIAH pilot study (PAPER.md §1) on SmolLM2-135M-Instruct: SFT1-SFT4 on the same general data,
# each evaluated on the 1k-8k essay grid, the needle-only tests and held-out HotpotQA, against the
# untuned base model. configs/experiments/pilot/README.md describes the arms.
#
#   bash benchmarks/pilot.sh inputs            # CPU, needs the asset packages (make setup)
#   bash benchmarks/pilot.sh base|sft1|sft2|sft3|sft4 ...   # GPU: train the arm (not base), evaluate it
#   bash benchmarks/pilot.sh sft3-s1 ...       # a replicate: training seed and data order 1
#   bash benchmarks/pilot.sh report            # tables with paired-bootstrap intervals + plot
#
# Arms given together run one after another; on a machine with several GPUs run one arm per GPU
# (CUDA_VISIBLE_DEVICES). CTX overrides the command (default: ctxsynth), PY the python, DRY=1 prints
# the commands instead of running them. Results: runs/eval/pilot-*, runs/pilot/train/*, REPORT_DIR.
set -euo pipefail
CTX=${CTX:-ctxsynth}
PY=${PY:-python3}
DRY=${DRY:-0}
REPORT_DIR=${REPORT_DIR:-runs/pilot/report}
EXP=configs/experiments/pilot
say() { printf '\n== %s  (%s)\n' "$1" "$(date +%T)"; }
do_() { if [[ $DRY == 1 ]]; then echo "$*"; else "$@"; fi; }

niah_file() {  # the NIAH training file of an arm (none for sft1)
  case ${1%-s*} in
    sft1) echo "";;
    sft2|sft3|sft4) echo "runs/pilot/niah/${1%-s*}/export/trl_messages/data.jsonl";;
    *) echo "unknown arm $1" >&2; exit 2;;
  esac
}

inputs() {
  say inputs
  [[ -f runs/pilot/general.jsonl ]] || do_ $PY benchmarks/pilot.py general runs/pilot/general.jsonl
  [[ -d runs/pilot/niah/sft2 ]] || do_ $CTX niah configs/pilot/sft2_needle_only.yaml --out runs/pilot/niah/sft2
  [[ -d runs/pilot/niah/sft3 ]] || do_ $CTX niah configs/pilot/sft3_short_haystack.yaml --out runs/pilot/niah/sft3
  [[ -d runs/pilot/niah/sft4 ]] || do_ $CTX niah $EXP/niah_sft4_8k.yaml --out runs/pilot/niah/sft4
  [[ -d runs/pilot/niah/grid ]] || do_ $CTX niah configs/pilot/test_grid_small.yaml --out runs/pilot/niah/grid
  [[ -d runs/pilot/niah/needle ]] || do_ $CTX niah $EXP/test_needle_only.yaml --out runs/pilot/niah/needle
  [[ -f runs/items/hotpotqa_heldout200.jsonl.gz ]] || do_ $CTX eval configs/eval/builtin_qa.yaml builtin.squad=0 \
      builtin.hotpotqa=200 --write-items runs/items/hotpotqa_heldout200.jsonl.gz
}

evaluate() {  # $1 arm, $2 model
  do_ $CTX eval $EXP/eval.yaml name=pilot-$1 model.model=$2
  do_ $CTX eval $EXP/eval.yaml name=pilot-$1-needle model.model=$2 'niah=[runs/pilot/niah/needle/test]' 'items=[]'
}

arm() {
  local name=$1
  say "$name"
  if [[ $name == base ]]; then evaluate base smollm2-135m-instruct; return; fi
  local file seed=42 shuffle=0; file=$(niah_file "$name")
  if [[ $name == *-s* ]]; then seed=${name##*-s}; shuffle=$seed; fi
  do_ $CTX train $EXP/train.yaml output_dir=runs/pilot/train/$name "data.train_files=[${file}]" \
      seed=$seed data.shuffle_seed=$shuffle
  evaluate "$name" runs/pilot/train/$name/final
}

report() {
  say report
  local grid=() needle=()
  for a in base sft1 sft2 sft3 sft4; do
    [[ -d runs/eval/pilot-$a || $DRY == 1 ]] && grid+=("$a=runs/eval/pilot-$a")
    [[ -d runs/eval/pilot-$a-needle || $DRY == 1 ]] && needle+=("$a=runs/eval/pilot-$a-needle")
  done
  do_ $PY benchmarks/pilot_report.py --out "$REPORT_DIR" --grid "${grid[@]}" --needle "${needle[@]}"
}

[[ $# -gt 0 ]] || { sed -n '2,14p' "$0"; exit 2; }
for step in "$@"; do
  case $step in
    inputs) inputs;;
    report) report;;
    base|sft[1-4]|sft[1-4]-s[0-9]*) arm "$step";;
    *) echo "unknown step $step (inputs, base, sft1..sft4, report)" >&2; exit 2;;
  esac
done
