#!/usr/bin/env bash
# RULER's 13 tasks (RULER's own generators and scorer, nvidia-long-context-eval) for SmolLM2-135M-
# Instruct base vs the pilot's SFT3 model at 4K and 8K, and for the 32K-window model at 4K-32K, with
# and without the chat template.
#
#   bash benchmarks/ruler_gpu.sh inputs                 # CPU, where the asset packages are (make setup)
#   bash benchmarks/ruler_gpu.sh sft3-train base sft3 m32k compare report pack   # GPU machine
#
# inputs: builds the items with `ctxsynth ruler` (N samples per task and length, RULER's seed) into
#   runs/ruler/items/{smollm2,m32k}/ and packs them, with the three files of the package's scorer
#   (long_context_eval/eval/synthetic/constants.py and its __init__ files), as runs/ruler_inputs.tar.xz
#   (a GPU machine without the package puts runs/ruler/pkg on PYTHONPATH; the haystacks repeat, so xz
#   shrinks the items a lot). Carry that archive to the GPU machine and `tar xJf` it there. It also
#   holds the SmolLM2 pilot's SFT3 training files (runs/pilot/general.jsonl and the sft3 NIAH export,
#   built here by benchmarks/pilot.py and configs/pilot/sft3_short_haystack.yaml when missing).
# sft3-train: trains the pilot's SFT3 model (benchmarks/pilot.sh's recipe and seed) into SFT3_MODEL
#   unless it exists (~1 min on a GPU; needs TRL).
# base / sft3 / m32k: `ctxsynth eval` on the items (scores.json holds RULER's table).
# compare: paired differences SFT3 - base. report: docs/results/ruler_smollm2/README.md.
# pack: everything in one archive, $OUT/ruler_results.tar (one file comes back whole).
#
# Env: N (samples per cell, default 50; RULER's own count is 500), N32 (32K model, default 25),
# SFT3_MODEL (default runs/pilot/train/sft3/final), M32K_MODEL (the 32K model's folder; m32k is
# skipped when unset), M32K_TOKENIZER (default M32K_MODEL), BATCH (default 64), BATCH32 (default 8),
# PY (default python3), CTX (default: $PY -m ctxsynth.cli), MODES (default [base,chat]), TASKS (default [all]),
# LENGTHS / LENGTHS32, DEVICE (default cuda), REPORT_DIR (default docs/results/ruler_smollm2), EVAL_ARGS (more
# `ctxsynth eval` overrides, e.g. model.options.packed=true).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-python3}
CTX=${CTX:-$PY -m ctxsynth.cli}
TASKS=${TASKS:-[all]}; LENGTHS=${LENGTHS:-[4096,8192]}; LENGTHS32=${LENGTHS32:-[4096,8192,16384,32768]}
DEVICE=${DEVICE:-cuda}; REPORT_DIR=${REPORT_DIR:-docs/results/ruler_smollm2}
N=${N:-50}; N32=${N32:-25}; BATCH=${BATCH:-64}; BATCH32=${BATCH32:-8}; MODES=${MODES:-[base,chat]}
SFT3_MODEL=${SFT3_MODEL:-runs/pilot/train/sft3/final}
M32K_MODEL=${M32K_MODEL:-}; M32K_TOKENIZER=${M32K_TOKENIZER:-$M32K_MODEL}
OUT=${OUT:-runs/ruler_out}
# a GPU machine without the package: the scorer's files packed by `inputs`
$PY -c "import long_context_eval" 2>/dev/null || export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$ROOT/src:$PWD/runs/ruler/pkg"
say() { printf '\n== %s  (%s)\n' "$1" "$(date +%T)"; }
log() { mkdir -p runs/ruler; local line="$*"; echo "${line//$ROOT\//}" >> runs/ruler/commands.txt; "$@"; }  # paths relative to the repository
eval_items() {  # name model items-folder max_len batch tokenizer
  log $CTX eval "$ROOT/configs/eval/ruler_smollm2.yaml" name=$1 model.model=$2 "ruler.tasks=[]" "items=[$3]" \
      model.max_model_len=$4 model.options.batch_size=$5 model.options.device=$DEVICE model.tokenizer=$6 ${EVAL_ARGS:-}
}

for step in "$@"; do
  case $step in
    inputs)
      say inputs
      log $CTX ruler "$ROOT/configs/eval/ruler_smollm2.yaml" ruler.num_samples=$N "ruler.modes=$MODES" \
          "ruler.tasks=$TASKS" "ruler.lengths=$LENGTHS" --out runs/ruler/items/smollm2
      if [[ -n $M32K_TOKENIZER ]]; then
        log $CTX ruler "$ROOT/configs/eval/ruler_32k.yaml" ruler.num_samples=$N32 "ruler.modes=$MODES" \
            "ruler.tasks=$TASKS" "ruler.lengths=$LENGTHS32" \
            ruler.tokenizer=$M32K_TOKENIZER model.tokenizer=$M32K_TOKENIZER --out runs/ruler/items/m32k
      fi
      [[ -f runs/pilot/general.jsonl ]] || log $PY "$ROOT/benchmarks/pilot.py" general runs/pilot/general.jsonl
      [[ -d runs/pilot/niah/sft3 ]] || log $CTX niah "$ROOT/configs/pilot/sft3_short_haystack.yaml" --out runs/pilot/niah/sft3
      pkg=$($PY -c "import importlib.util as u; print(u.find_spec('long_context_eval').submodule_search_locations[0])")
      mkdir -p runs/ruler/pkg/long_context_eval/eval/synthetic
      for f in __init__.py eval/__init__.py eval/synthetic/__init__.py eval/synthetic/constants.py; do
        cp "$pkg/$f" runs/ruler/pkg/long_context_eval/$f
      done
      $PY -c "import importlib.metadata as m; print('nvidia-long-context-eval', m.version('nvidia-long-context-eval'))" \
          > runs/ruler/versions.txt
      tar cJf runs/ruler_inputs.tar.xz runs/ruler runs/pilot/general.jsonl runs/pilot/niah/sft3/export/trl_messages
      ls -la runs/ruler_inputs.tar.xz;;
    sft3-train)
      say sft3-train
      if [[ -d $SFT3_MODEL ]]; then echo "$SFT3_MODEL exists: not trained again"; continue; fi
      [[ $SFT3_MODEL == */final ]] || { echo "SFT3_MODEL must end in /final (the training's output)" >&2; exit 2; }
      log $CTX train "$ROOT/configs/experiments/pilot/train.yaml" output_dir=${SFT3_MODEL%/final} \
          "data.train_files=[runs/pilot/niah/sft3/export/trl_messages/data.jsonl]" seed=42 data.shuffle_seed=0;;
    base) say base; eval_items ruler-smollm2-base smollm2-135m-instruct runs/ruler/items/smollm2 8192 "$BATCH" smollm2;;
    sft3) say sft3; eval_items ruler-smollm2-sft3 "$SFT3_MODEL" runs/ruler/items/smollm2 8192 "$BATCH" smollm2;;
    m32k)
      say m32k
      if [[ -z $M32K_MODEL ]]; then echo "M32K_MODEL unset: skipped"; continue; fi
      eval_items ruler-32k "$M32K_MODEL" runs/ruler/items/m32k 32768 "$BATCH32" "$M32K_TOKENIZER";;
    compare) say compare; log $CTX compare runs/eval/ruler-smollm2-base runs/eval/ruler-smollm2-sft3 --out runs/eval/ruler-compare;;
    report) say report; log $PY "$ROOT/benchmarks/ruler_report.py" --out "$REPORT_DIR";;
    pack)
      mkdir -p "$OUT"
      tar cf "$OUT/ruler_results.tar" --exclude='cache.sqlite' runs/eval/ruler-* runs/ruler/commands.txt \
          runs/ruler/versions.txt "$REPORT_DIR" 2>/dev/null || true
      ls -la "$OUT";;
    *) echo "unknown step $step"; exit 2;;
  esac
done
