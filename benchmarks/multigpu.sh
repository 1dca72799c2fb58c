#!/usr/bin/env bash
# Several GPUs (issue 13 item 4): generation, FSDP training and evaluation on 1 GPU, then on 2.
#
#   bash benchmarks/multigpu.sh inputs      # CPU, needs the asset packages: the 200 HotpotQA eval items
#   bash benchmarks/multigpu.sh one         # GPU 0: FSDP train on 1 process | GPU 1: generate, then eval
#   bash benchmarks/multigpu.sh train2      # both GPUs: FSDP train on 2 processes (train1: 1 process alone)
#   bash benchmarks/multigpu.sh gen2 eval2  # both GPUs: generation and evaluation, one replica per GPU
#   bash benchmarks/multigpu.sh gen1 eval1  # GPU 0 alone: the 1-GPU generation and evaluation without training
#   bash benchmarks/multigpu.sh zero3       # DeepSpeed ZeRO-3 training on 1 process, then 2 (needs deepspeed)
#   bash benchmarks/multigpu.sh report      # CPU: $OUT -> docs/results/multigpu.md
#   bash benchmarks/multigpu.sh all         # one train2 gen2 eval2, one after another
#
# Every part writes its results under $OUT/multigpu/ as soon as it ends (a killed part loses only
# itself). `one` runs its two lanes at the same time on different GPUs (the 1-GPU baselines).
# DRY=1 prints the commands; TINY=1 runs everything at smoke size on CPU (BENCH_DEVICE=cpu).
# Sizes: GEN_N (2048) requests of GEN_TOKENS (300) tokens in batches of GEN_BATCH (256), with GEN_FLAGS
# ("--static-cache --warmup": CUDA graphs, one untimed batch per replica first; "" = the default path); the 1B
# shape, 32k packs, TRAIN_STEPS (20) steps, TRAIN_WARMUP (6) not timed, global batch 2, compile on
# (COMPILE=0: off, for a rerun if compilation under FSDP fails).
set -euo pipefail
PY=${PY:-python3}
DRY=${DRY:-0}
TINY=${TINY:-0}
OUT=${OUT:-runs/gpu_out}
R=$OUT/multigpu
ITEMS=${ITEMS:-runs/items/hotpotqa_heldout200.jsonl.gz} EVAL_N=200
REPORT=${REPORT:-docs/results/multigpu.md}
GEN_N=${GEN_N:-2048} GEN_TOKENS=${GEN_TOKENS:-300} GEN_BATCH=${GEN_BATCH:-256}
read -r -a GEN_FLAGS <<< "${GEN_FLAGS---static-cache --warmup}"
TRAIN_STEPS=${TRAIN_STEPS:-20} TRAIN_WARMUP=${TRAIN_WARMUP:-6}
SHAPE=(--shape 1b --attn ctxsynth_varlen --compile) DEV=cuda EVAL_BATCH=32 EVAL_EXTRA=() EVAL_TO=240 GEN_TO=300
[[ ${COMPILE:-1} == 1 ]] || SHAPE=(--shape 1b --attn ctxsynth_varlen)
# torch.compile's worker processes stay few, so the training lane of `one` leaves the CPU cores of
# the generation lane alone (both lanes run at once); the same setting for 1 and 2 processes
export TORCHINDUCTOR_COMPILE_THREADS=${COMPILE_THREADS:-8}
if [[ $TINY == 1 ]]; then
  export BENCH_DEVICE=cpu BENCH_PACK=512 CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1
  GEN_N=4 GEN_TOKENS=8 GEN_BATCH=2 TRAIN_STEPS=3 TRAIN_WARMUP=1 EVAL_BATCH=2
  SHAPE=(--shape tinyfull --attn sdpa) DEV=cpu EVAL_N=3 ITEMS=${OUT}/items_tiny.jsonl.gz EVAL_EXTRA=(model.max_model_len=768) EVAL_TO=900 GEN_TO=900
fi
say() { printf '\n== %s  (%s)\n' "$1" "$(date +%T)"; }
do_() { if [[ $DRY == 1 ]]; then echo "${CUDA_VISIBLE_DEVICES+CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES }$*"; else "$@"; fi; }
gpu() { if [[ $TINY == 1 ]]; then "${@:2}"; else CUDA_VISIBLE_DEVICES=$1 "${@:2}"; fi; }
mkdir -p "$R"

inputs() {
  say inputs
  [[ -f $ITEMS ]] || do_ $PY -m ctxsynth.cli eval configs/eval/builtin_qa.yaml builtin.squad=0 builtin.hotpotqa=$EVAL_N \
      --write-items "$ITEMS"
}

train() {  # $1 processes [$2: DeepSpeed ZeRO-3 instead of FSDP, without compile]
  local shape=("${SHAPE[@]}") cfg=() x
  if [[ ${2:-} == zero3 ]]; then
    shape=() cfg=(--config configs/accelerate/deepspeed_zero3.yaml)
    for x in "${SHAPE[@]}"; do [[ $x == --compile ]] || shape+=("$x"); done
  fi
  do_ timeout 400 $PY benchmarks/train_fsdp.py part --nprocs "$1" "${shape[@]}" "${cfg[@]}" --steps "$TRAIN_STEPS" \
      --warmup "$TRAIN_WARMUP" --global-batch 2 --timeout 380 --out "$R/train" || echo "train on $1 failed ($?)"
}

gen() {  # $1 replicas
  do_ timeout $GEN_TO $PY benchmarks/multigpu_generate.py --device $DEV --devices "$1" --n "$GEN_N" \
      --max-tokens "$GEN_TOKENS" --batch-size "$GEN_BATCH" "${GEN_FLAGS[@]}" --out "$R/gen_$1.json" \
      --texts "$R/gen_$1.texts.jsonl" || echo "gen on $1 failed ($?)"
}

evaluate() {  # $1 replicas: the 200 HotpotQA items, greedy, batches of EVAL_BATCH
  local opts="{device: $DEV, batch_size: $EVAL_BATCH}"
  [[ $1 -gt 1 ]] && opts="{device: $DEV, batch_size: $EVAL_BATCH, devices: $1}"
  do_ timeout $EVAL_TO $PY -m ctxsynth.cli eval configs/experiments/pilot/eval.yaml name=eval_$1 out_dir="$R/eval" \
      'niah=[]' "items=[$ITEMS]" "model.options=$opts" "${EVAL_EXTRA[@]}" || echo "eval on $1 failed ($?)"
}

machine() {  # what ran: GPUs, cores, library versions
  [[ $DRY == 1 ]] && { echo "(machine.txt, versions.json)"; return 0; }
  { nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>/dev/null | paste -sd ';' \
      || echo "no nvidia-smi"; } | tr '\n' ' ' > "$R/machine.txt"
  echo "; $(nproc) CPU cores; $(uname -sr)" >> "$R/machine.txt"
  $PY -c 'import json, platform, torch, transformers, accelerate, trl, peft
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
                  "accelerate": accelerate.__version__, "trl": trl.__version__, "peft": peft.__version__,
                  "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}))' > "$R/versions.json" || true
}

one() {
  say "one: train on GPU 0 | generate + evaluate on GPU 1"
  machine
  gpu 0 train 1 > "$R/lane_train1.log" 2>&1 &
  local pid=$!
  { gpu 1 gen 1; gpu 1 evaluate 1; } > "$R/lane_gen1.log" 2>&1 || true
  wait $pid || true
  cat "$R/lane_train1.log" "$R/lane_gen1.log"
}

report() {
  say report
  do_ $PY benchmarks/multigpu_report.py --results "$R" --out "$REPORT"
}

[[ $# -gt 0 ]] || { sed -n '2,18p' "$0"; exit 2; }
for step in "$@"; do
  case $step in
    inputs) inputs;;
    one) one;;
    train1) say train1; gpu 0 train 1;;
    train2) say train2; train 2;;
    gen1) say gen1; gpu 0 gen 1;;
    gen2) say gen2; gen 2;;
    eval1) say eval1; gpu 0 evaluate 1;;
    zero3) say zero3; gpu 0 train 1 zero3; train 2 zero3;;
    eval2) say eval2; evaluate 2;;
    all) one; say train2; train 2; say gen2; gen 2; say eval2; evaluate 2;;
    report) report;;
    *) echo "unknown step $step (inputs, one, train1, train2, gen1, gen2, eval1, eval2, zero3, all, report)" >&2; exit 2;;
  esac
done
