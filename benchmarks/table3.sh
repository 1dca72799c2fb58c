#!/usr/bin/env bash
# Table 3 of the paper in miniature (issue 12 item 3) on SmolLM2-135M-Instruct: the same trainee, recipe,
# general data and long-data token budget in every arm; arms and configs: configs/experiments/table3/.
#
#   bash benchmarks/table3.sh inputs     # CPU, needs the asset packages: seeds, writer rows, NIAH data, test items
#   bash benchmarks/table3.sh gen        # GPU: train the context writer, then contexts from both generators and
#                                        #      instruction synthesis; then `prep`
#   bash benchmarks/table3.sh prep       # CPU: human contexts, 1/5-document variants, caps -> runs/table3/data(.txz)
#   bash benchmarks/table3.sh arms1      # GPU: train + evaluate general niah human | cs_smollm2 cs_smollm2_nc human_nc
#   bash benchmarks/table3.sh arms2      # GPU: ... cs_writer cs_writer_nc cs_smollm2_d1 | instruction instruction_nc cs_smollm2_d5
#   bash benchmarks/table3.sh arm NAME.. # GPU: these arms, one after another, on the visible device
#   bash benchmarks/table3.sh report     # tables (paired bootstrap vs general only), plot -> REPORT_DIR
#
# gen/arms1/arms2 run two lanes, one per GPU (CUDA_VISIBLE_DEVICES 0 and 1; LANES=1 runs them one after
# the other). Each finished piece is copied to $OUT/table3 at once (a killed part keeps what finished).
# Env: CTX (default ctxsynth), PY (python3), DEVICE (cuda; cpu for the tiny check), TINY=1 (a few seeds,
# items and steps: the end-to-end check on a CPU), BUDGET (long-data tokens per arm, default 400000),
# DRY=1 prints the commands, REPORT_DIR, SRC (the returned files for report, default $OUT/table3).
set -euo pipefail
CTX=${CTX:-ctxsynth}
PY=${PY:-python3}
DRY=${DRY:-0}
DEVICE=${DEVICE:-cuda}
TINY=${TINY:-0}
LANES=${LANES:-2}
BUDGET=${BUDGET:-400000}
OUT=${OUT:-runs/table3/out}
SAVE=$OUT/table3
EXP=configs/experiments/table3
IN=runs/table3/inputs
REPORT_DIR=${REPORT_DIR:-runs/table3/report}
ARMS=(general niah instruction instruction_nc cs_smollm2 cs_smollm2_nc cs_writer cs_writer_nc human human_nc cs_smollm2_d1 cs_smollm2_d5)
say() { printf '\n== %s  (%s)\n' "$1" "$(date +%T)"; }
do_() { if [[ $DRY == 1 ]]; then echo "$*"; else "$@"; fi; }

# the tiny CPU check: a few seeds and items, a few steps, the CPU
if [[ $TINY == 1 ]]; then
  N=(--n 8 --writer-n 12) NIAH_N=train.samples_per_variant=3 ITEMS=(builtin.hotpotqa=4 builtin.squad=2 'builtin.squad_lengths=[2048]')
  TEST_N=(test.samples_per_cell=1 'test.depths=[0.5]' 'test.lengths=[2048]')
  # generation on a loaded 2-core CPU takes minutes a request: TINY_LLM=fake swaps in the offline fake
  # backend (the writer is still trained and loaded for real); TINY_LLM=real keeps SmolLM2
  if [[ ${TINY_LLM:-fake} == fake ]]; then GEN=(llm.backend=fake 'llm.options={words: 40}' llm.max_tokens=100)
  else GEN=(llm.options.device=cpu llm.options.batch_size=8 llm.max_tokens=48); fi
  GEN+=(synth.max_attempts=1 'verify.checks=[refusal]')
  CTXW=(synth.target_words=30)                 # context tasks only (instruction synthesis has no length)
  ASM=(assemble.max_total_tokens=1024 assemble.distractors=any_task)   # 8 seeds: too few per task
  ASM10=(assemble.n_documents=4)               # the 10-document runs: 8 seeds cannot give 9 distractors
  TRAIN=(max_steps=1 bf16=false data.general_max_samples=1 data.max_length=1024 data.packing=false)
  EVAL=(model.options.device=cpu model.options.batch_size=4 model.max_model_len=2304 limit_per_task=1)
  GENERAL_N=40 BUDGET=${BUDGET_TINY:-20000}
else
  N=(--n 300 --writer-n 1000) NIAH_N=train.samples_per_variant=200 ITEMS=() TEST_N=()
  GEN=(llm.options.device=$DEVICE) CTXW=() ASM=() ASM10=() TRAIN=() EVAL=(model.options.device=$DEVICE) GENERAL_N=1000
fi

save() {  # $1 name, rest: paths -> $SAVE/$1.tgz (small files only: no weights, no caches)
  local name=$1; shift
  [[ $DRY == 1 ]] && { echo "save $name: $*"; return; }
  mkdir -p "$SAVE"
  tar czf "$SAVE/$name.tgz" --exclude='*.sqlite*' --exclude='*.safetensors' --exclude='final' \
      --exclude='checkpoint-*' --exclude='*.bin' "$@" 2>/dev/null || true
}

inputs() {
  say inputs
  mkdir -p $IN
  [[ -f $IN/general.jsonl ]] || do_ $PY benchmarks/pilot.py general $IN/general.jsonl --n $GENERAL_N
  [[ -f $IN/seeds.jsonl ]] || do_ $PY benchmarks/table3.py seeds $IN "${N[@]}" --general $IN/general.jsonl
  [[ -f $IN/writer.jsonl ]] || do_ $CTX writer-data $EXP/writer_data.yaml --out $IN/writer.jsonl --exclude $IN/seeds.jsonl
  [[ -d $IN/niah_train ]] || do_ $CTX niah $EXP/niah_train.yaml $NIAH_N --out $IN/niah_train
  [[ -d $IN/niah_test ]] || do_ $CTX niah $EXP/niah_test.yaml "${TEST_N[@]}" --out $IN/niah_test
  [[ -f $IN/items.jsonl.gz ]] || do_ $CTX eval $EXP/items.yaml "${ITEMS[@]}" --write-items $IN/items.jsonl.gz
  do_ tar cJf runs/table3/inputs.txz $IN
  [[ $DRY == 1 ]] || ls -la $IN runs/table3/inputs.txz
}

pipe() {  # $1 config stem, rest: overrides
  local cfg=$1; shift
  do_ $CTX run $EXP/$cfg.yaml "$@"
}

copy_synth() {  # the 1/5-document runs reuse generator A's contexts: same seeds and synth/, new assembly
  local d=$1 src=runs/table3/pipe/table3-cs-smollm2 dst=runs/table3/pipe/table3-cs-smollm2-d$1
  [[ -d $dst/synth ]] && return 0
  do_ mkdir -p "$dst/_state"
  # the stage markers and the saved config come along, so the runner skips seeds and synthesize
  # ("config changed (name, assemble.n_documents, ...): assemble and later stages will rerun")
  do_ cp -r "$src/seeds" "$src/synth" "$src/config.yaml" "$dst/"
  do_ cp -r "$src/_state/seeds" "$src/_state/synthesize" "$dst/_state/"
}

cap() {  # $1 arm, $2 source messages file
  do_ $PY benchmarks/table3.py cap "$2" runs/table3/data/$1.jsonl --tokens $BUDGET
}

export_file() { echo "runs/table3/pipe/table3-$1/export/$2/data.jsonl"; }

lane_gen_writer() {  # lane 0: the context writer, then generator B
  say "gen: context writer"
  if [[ -f runs/table3/writer/final/config.json ]]; then echo "trained already: runs/table3/writer/final"
  else do_ $CTX train $EXP/writer_train.yaml "${TRAIN[@]}"; fi
  save writer runs/table3/writer
  say "gen: generator B (tuned writer)"
  pipe cs_writer "${GEN[@]}" "${CTXW[@]}" "${ASM[@]}" "${ASM10[@]}"
  save pipe-cs-writer runs/table3/pipe/table3-cs-writer
}

lane_gen_base() {  # lane 1: generator A, instruction synthesis
  say "gen: generator A (SmolLM2 as is)"
  pipe cs_smollm2 "${GEN[@]}" "${CTXW[@]}" "${ASM[@]}" "${ASM10[@]}"
  save pipe-cs-smollm2 runs/table3/pipe/table3-cs-smollm2
  say "gen: instruction synthesis"
  pipe instruction "${GEN[@]}" "${ASM[@]}" "${ASM10[@]}"
  save pipe-instruction runs/table3/pipe/table3-instruction
}

prep() {  # no model: human contexts, the 1/5-document assemblies of generator A's contexts, the caps
  say "prep: human contexts, 1 and 5 documents"
  pipe human "${ASM[@]}" "${ASM10[@]}"
  for d in 1 5; do copy_synth $d; pipe cs_smollm2_d$d "${GEN[@]}" "${CTXW[@]}" "${ASM[@]}"; done
  save pipe-other runs/table3/pipe/table3-human runs/table3/pipe/table3-cs-smollm2-d1 runs/table3/pipe/table3-cs-smollm2-d5
  caps
  do_ tar cJf runs/table3/data.txz runs/table3/data
}

caps() {
  say "caps: at most $BUDGET long-data tokens per arm"
  mkdir -p runs/table3/data
  cap niah $IN/niah_train/export/trl_messages/data.jsonl
  for run in instruction cs-smollm2 cs-writer human cs-smollm2-d1 cs-smollm2-d5; do
    local arm=${run//-/_}
    [[ -f $(export_file $run trl_messages) || $DRY == 1 ]] || { echo "no export for $run (its generation failed?)"; continue; }
    cap $arm "$(export_file $run trl_messages)"
    # the context-free twin: the same pairs as the capped with-context file, contexts removed
    [[ $arm == *_d[15] ]] || do_ $PY benchmarks/table3.py twin runs/table3/data/$arm.jsonl "$(export_file $run context_free)" runs/table3/data/${arm}_nc.jsonl
  done
  save data runs/table3/data
}

lanes() {  # $1 function or "arm a b c" for lane 0, $2 for lane 1; logs in $SAVE
  mkdir -p "$SAVE"
  if [[ $LANES == 1 || $DRY == 1 ]]; then
    $1; $2
  else
    local gpu fn
    for gpu in 0 1; do
      fn=$1; [[ $gpu == 1 ]] && fn=$2
      ( if CUDA_VISIBLE_DEVICES=$gpu $fn > "$SAVE/lane$gpu-$3.log" 2>&1; then rc=0; else rc=$?; fi
        echo "lane $gpu exit $rc" >> "$SAVE/lane$gpu-$3.log" ) &
    done
    wait
    tail -n 3 "$SAVE"/lane*-$3.log
  fi
}

gen() {
  [[ -f $IN/seeds.jsonl || $DRY == 1 ]] || { echo "no $IN: run 'inputs' here first (or tar xJf runs/table3/inputs.txz)"; exit 2; }
  lanes lane_gen_writer lane_gen_base gen
  prep
}

arm() {  # train one arm on the general rows + its capped long data, then evaluate it
  local name=$1
  say "arm $name"
  [[ " ${ARMS[*]} " == *" $name "* ]] || { echo "unknown arm $name (${ARMS[*]})"; exit 2; }
  if [[ $name != general && ! -s runs/table3/data/$name.jsonl && $DRY != 1 ]]; then
    echo "arm $name: no rows in runs/table3/data/$name.jsonl (gen did not make any); skipped"; return 0
  fi
  do_ $CTX train $EXP/arm_$name.yaml "${TRAIN[@]}" || { echo "arm $name: training failed"; return 0; }
  do_ $CTX eval $EXP/eval.yaml name=table3-$name model.model=runs/table3/train/$name/final "${EVAL[@]}" \
    || { echo "arm $name: evaluation failed"; return 0; }
  save arm-$name runs/eval/table3-$name runs/table3/train/$name
}

arms_of() { for a in "$@"; do arm "$a"; done; }
arms1_0() { arms_of general niah human; }
arms1_1() { arms_of cs_smollm2 cs_smollm2_nc human_nc; }
arms2_0() { arms_of cs_writer cs_writer_nc cs_smollm2_d1; }
arms2_1() { arms_of instruction instruction_nc cs_smollm2_d5; }

report() {
  say report
  do_ $PY benchmarks/table3_report.py --src "${SRC:-$SAVE}" --out "$REPORT_DIR"
}

[[ $# -gt 0 ]] || { sed -n '2,20p' "$0"; exit 2; }
while [[ $# -gt 0 ]]; do
  step=$1; shift
  case $step in
    inputs) inputs;;
    gen) gen;;
    prep) prep;;
    arms1) lanes arms1_0 arms1_1 arms1;;
    arms2) lanes arms2_0 arms2_1 arms2;;
    arm) arms_of "$@"; break;;
    report) report;;
    *) echo "unknown step $step (inputs, gen, prep, arms1, arms2, arm NAME.., report)" >&2; exit 2;;
  esac
done
