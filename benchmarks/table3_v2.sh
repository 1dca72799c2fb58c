#!/usr/bin/env bash
# Table 3 v2 (docs/results/table3_v2/DESIGN.md) on SmolLM2-135M-Instruct. CPU steps need the asset
# packages; GPU steps need only runs/table3_v2/inputs (carry it: `split` writes it).
#
#   bash benchmarks/table3_v2.sh split        # CPU: roles, leakage check, writer rows, tests -> runs/table3_v2/inputs
#   bash benchmarks/table3_v2.sh writers      # GPU: train the context writer and the question writer (same triples)
#   bash benchmarks/table3_v2.sh gen          # GPU: context synthesis and instruction synthesis of every seed
#   bash benchmarks/table3_v2.sh prep         # CPU: human contexts, ablation assemblies, every arm's slot at budget B
#   bash benchmarks/table3_v2.sh arms TIER    # GPU: train + evaluate TIER (1, 2 or all) x seeds 1 2 3, a queue over GPUs
#   bash benchmarks/table3_v2.sh run ARM SEED # GPU: one arm x seed on the visible device
#   bash benchmarks/table3_v2.sh pack         # all saved so far -> $OUT/table3_v2_results.tgz (predictions, summaries, logs)
#                                             #   and $OUT/table3_v2_data-{pipe-gen,arms}.txz (kept contexts; the arms'
#                                             #   files, all `arms` needs), a file over PART_BYTES in .partNN pieces
#   bash benchmarks/table3_v2.sh report       # tables and plot from the committed files (benchmarks/table3_v2_report.py)
#   bash benchmarks/table3_v2.sh restore DIR  # a fresh machine: put back what an earlier call's pack returned (DIR holds
#                                             #   table3_v2_results.tgz and/or table3_v2_data-*.txz): saved runs are
#                                             #   skipped, the generation runs, the arms' files and arms.json are back
#
# Each finished piece is saved at once under runs/table3_v2/saved/ (kept on a warm machine between
# calls); a run already saved is skipped, so a call can be repeated; end every call with `pack` (files
# under $OUT, each under the 16 MiB a call returns). A failed run is logged, the rest go on, and the script exits 1 naming it. DEADLINE=S makes `arms` start no run after S seconds, so
# `DEADLINE=300 bash benchmarks/table3_v2.sh arms 1 pack` ends inside a 10-minute call. Env: CTX (ctxsynth; `$PY -m ctxsynth.cli` where no ctxsynth is on PATH), PY (python3), DEVICE (cuda; cpu for TINY), TINY=1
# (a few seeds, items and steps: the CPU check; generation through the offline fake backend), PER_GPU (runs
# at a time per GPU, every GPU nvidia-smi lists; default 2; the lanes share one queue, tier 1 first), FRACTION
# (the share of free GPU memory an evaluation's waves take, default 0.75/PER_GPU), SEEDS ("1 2 3"),
# BUDGET (500000), PART_BYTES (15 MiB), DRY=1 prints the commands, TRAINEE (smollm2; gemma3-270m: tier 1
# again on the 32k-window model, `split` adds the 16k/32k tests, runs under runs/table3_v2/gemma3-270m,
# results in docs/results/table3_v2/gemma3-270m; DESIGN.md's amendment of 2026-12-08).
set -euo pipefail
PY=${PY:-python3}
if [[ -z ${CTX:-} ]]; then  # the command where installed, else the module (a GPU machine with carried wheels)
  if command -v ctxsynth >/dev/null; then CTX=ctxsynth; else CTX="$PY -m ctxsynth.cli"; fi
fi
DRY=${DRY:-0}
DEVICE=${DEVICE:-cuda}
TINY=${TINY:-0}
SEEDS=${SEEDS:-1 2 3}
PER_GPU=${PER_GPU:-2}
BUDGET=${BUDGET:-500000}
OUT=${OUT:-runs/table3_v2/out}
PART_BYTES=${PART_BYTES:-15728640}
CFG=configs/table3_v2
R=runs/table3_v2
# TRAINEE=gemma3-270m: the tier-1 arms again on the 32k-window trainee (DESIGN.md), on the same arm files, also
# evaluated on the 16k/32k tests (`split` with TRAINEE=gemma3-270m writes them); its runs live under $R/gemma3-270m
TRAINEE=${TRAINEE:-smollm2}
PAGE=docs/results/table3_v2  # the SmolLM2 page; its data/ holds the split, the arms' files and arms.json
case $TRAINEE in
  smollm2) RUN=$R RESULTS=table3_v2_results.tgz TPAGE=$PAGE;;
  gemma3-270m) RUN=$R/$TRAINEE RESULTS=table3_v2_${TRAINEE}_results.tgz TPAGE=$PAGE/$TRAINEE;;
  *) echo "TRAINEE must be smollm2 or gemma3-270m, not '$TRAINEE'" >&2; exit 2;;
esac
SAVE=$RUN/saved
DATA=${DATA:-$TPAGE/data}  # the committed results: a run whose predictions are here is not run again
DEADLINE=${DEADLINE:-0}
IN=$R/inputs
TIER1=(general cs is human cs_nc cs_perm)
TIER2=(is_nc human_nc niah cs_d1 cs_d5 cs_d10 cs_any cs_hard cs_pos0 cs_pos05 cs_pos1)
ABLATIONS=(d1 d5 any hard pos0 pos05 pos1)
say() { printf '\n== %s  (%s)\n' "$1" "$(date +%T)"; }
# a run that fails is logged and the queue goes on (the others, then pack, still happen); the script
# then exits 1 naming every failed run of this invocation (lanes are subshells: they append to a file)
FAILED=$(mktemp)
trap 'rm -f "$FAILED"' EXIT
failed() { echo "run $1"; echo "$1" >> "$FAILED"; }
do_() { if [[ $DRY == 1 ]]; then echo "$*"; else "$@"; fi; }

if [[ $TINY == 1 ]]; then
  SPLIT=(--tiny) SEEDS=${SEEDS_TINY:-1} BUDGET=${BUDGET_TINY:-20000}
  GEN=(llm.backend=fake 'llm.options={words: 40}' llm.max_tokens=100 synth.max_attempts=1 'verify.checks=[refusal]')
  ASM=(assemble.max_total_tokens=1024 assemble.distractors=any_task assemble.n_documents=3)
  TRAIN=(max_steps=1 bf16=false data.general_max_samples=1 data.max_length=2048)
  EVAL=(model.options.device=cpu model.options.batch_size=4 limit_per_task=1)
else
  # lanes share a GPU: each evaluation's waves take 0.75/PER_GPU of the free memory, not 0.75 (three lanes at
  # 0.75 ran a training and an evaluation out of memory on 2026-12-07)
  FRACTION=${FRACTION:-$(awk -v n="$PER_GPU" 'BEGIN { printf "%.3g", 0.75 / n }')}
  SPLIT=() GEN=(llm.options.device=$DEVICE) ASM=() TRAIN=() EVAL=(model.options.device=$DEVICE model.options.memory_fraction=$FRACTION)
fi
if [[ $TRAINEE != smollm2 ]]; then  # the same recipe, packs and steps; the 8k tests and the 16k/32k ones in the model's window
  SPLIT+=(--long "$TRAINEE") TRAIN+=(model=$TRAINEE)
  EVAL+=("items=[$IN/tests.jsonl.gz,$IN/tests_long.jsonl]" model.tokenizer=$TRAINEE model.max_model_len=32768)
fi

save() {  # $1 name, rest: paths -> $SAVE/$1.tgz (no weights, no caches, no full-prompt predictions)
  local name=$1; shift
  [[ $DRY == 1 ]] && { echo "save $name: $*"; return; }
  mkdir -p "$SAVE"
  tar czf "$SAVE/$name.tgz" --exclude='*.sqlite*' --exclude='*.safetensors' --exclude='final' \
      --exclude='checkpoint-*' --exclude='*.bin' --exclude='predictions.jsonl' "$@" 2>/dev/null || true
}

save_data() {  # $1 name, rest: paths -> $R/saved_data/$1.tar (the big, repetitive files: xz at pack)
  local name=$1; shift
  [[ $DRY == 1 ]] && { echo "save_data $name: $*"; return; }
  mkdir -p "$R/saved_data"
  tar cf "$R/saved_data/$name.tar" --exclude='*.sqlite*' --exclude='_state' "$@" 2>/dev/null || true
}

split() {
  say split
  do_ $PY benchmarks/table3_v2_inputs.py split $IN --commit $PAGE/data "${SPLIT[@]}"
  if [[ $TRAINEE != smollm2 ]]; then  # the 16k/32k items: 43 MB gzipped, 13 MB as xz (the padding repeats across
    # items), so they travel as $R/tests_long.tar.xz (gpu_setup.sh unpacks it) and are read uncompressed there
    do_ gzip -dkf $IN/tests_long.jsonl.gz
    do_ tar cJf $R/tests_long.tar.xz $IN/tests_long.jsonl
  fi
}

writers() {
  [[ -f $IN/writer_context.jsonl || $DRY == 1 ]] || { echo "no $IN: run 'split' on the CPU and carry runs/table3_v2/inputs"; exit 2; }
  local w
  for w in context question; do
    say "writer: $w"
    if [[ -f $R/writer_$w/final/config.json ]]; then echo "trained already: $R/writer_$w/final"
    else do_ $CTX train $CFG/writer_${w}_train.yaml "${TRAIN[@]}"; fi
    save writer-$w $R/writer_$w
  done
}

gen() {  # the two generators, one per GPU when there are two
  say "gen: context synthesis (cs) and instruction synthesis (is)"
  local extra=()
  [[ $TINY == 1 ]] && extra=(synth.target_words=30)
  if [[ $DRY == 1 || $(gpu_count) -lt 2 ]]; then
    do_ $CTX run $CFG/cs.yaml "${GEN[@]}" "${extra[@]}" "${ASM[@]}"
    do_ $CTX run $CFG/is.yaml "${GEN[@]}" "${ASM[@]}"
  else
    CUDA_VISIBLE_DEVICES=0 $CTX run $CFG/cs.yaml "${GEN[@]}" "${ASM[@]}" > "$R/gen-cs.log" 2>&1 &
    CUDA_VISIBLE_DEVICES=1 $CTX run $CFG/is.yaml "${GEN[@]}" "${ASM[@]}" > "$R/gen-is.log" 2>&1 &
    wait
  fi
  save gen-state $R/pipe/table3-v2-cs/_state $R/pipe/table3-v2-is/_state $R/gen-*.log
  save_data pipe-gen $R/pipe/table3-v2-cs $R/pipe/table3-v2-is
}

copy_synth() {  # an ablation run reuses cs's contexts: seeds/ and synth/ with their markers, new assembly
  local src=$R/pipe/table3-v2-cs dst=$R/pipe/table3-v2-cs-$1
  [[ -d $dst/synth ]] && return 0
  do_ mkdir -p "$dst/_state"
  do_ cp -r "$src/seeds" "$src/synth" "$src/config.yaml" "$dst/"
  do_ cp -r "$src/_state/seeds" "$src/_state/synthesize" "$dst/_state/"
}

prep() {  # no model: human contexts, the ablation assemblies, the arms' slots
  say "prep: human contexts and ablation assemblies"
  do_ $CTX run $CFG/human.yaml "${ASM[@]}"
  local a extra=()
  [[ $TINY == 1 ]] && extra=(synth.target_words=30)
  for a in "${ABLATIONS[@]}"; do
    copy_synth "$a"
    local asm=("${ASM[@]}")
    [[ $TINY == 1 && $a == d1 ]] && asm=(assemble.max_total_tokens=1024)
    do_ $CTX run $CFG/cs_$a.yaml "${GEN[@]}" "${extra[@]}" "${asm[@]}"
  done
  say "prep: every arm's long-data slot at budget $BUDGET"
  do_ $PY benchmarks/table3_v2_inputs.py arms $IN $R/pipe $R/arms --budget "$BUDGET"
  save arms-summary $R/arms/arms.json
  # what `arms` needs and what a reviewer reads: every arm's file (sha256 in arms.json) and the two generators'
  # kept and rejected records; committed as $DATA/table3_v2_data-arms.txz, so `restore $DATA` needs nothing else
  save_data arms $R/arms $R/pipe/table3-v2-cs/synth $R/pipe/table3-v2-is/synth
}

gpu_count() { if [[ $DEVICE == cpu ]]; then echo 1; else nvidia-smi -L 2>/dev/null | wc -l; fi; }

run() {  # $1 arm, $2 seed: train on general rows + the arm's slot, evaluate, save
  local arm=$1 seed=$2 steps
  say "run $arm seed $seed"
  [[ " ${TIER1[*]} ${TIER2[*]} " == *" $arm "* ]] || { echo "unknown arm $arm (${TIER1[*]} ${TIER2[*]})"; exit 2; }
  if [[ $DRY == 1 ]]; then steps=S; else
    steps=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['max_steps'])" $R/arms/arms.json); fi
  local name=$arm-s$seed steps_arg=(max_steps=$steps)
  [[ -f $SAVE/run-$name.tgz && $DRY != 1 ]] && { echo "done already: $SAVE/run-$name.tgz"; return 0; }
  [[ -f $DATA/predictions/$name.jsonl.gz && $DRY != 1 && $TINY != 1 ]] \
    && { echo "done already (committed): $DATA/predictions/$name.jsonl.gz"; return 0; }
  [[ $TINY == 1 ]] && steps_arg=()
  do_ $CTX train $CFG/arm.yaml output_dir=$RUN/train/$name "data.train_files=[$R/arms/$arm.jsonl]" seed=$seed \
      data.shuffle_seed=$seed "${steps_arg[@]}" "${TRAIN[@]}" || { failed "$name: training failed"; return 0; }
  say "evaluate $name"  # the times between these lines: process start, training, evaluation, saving
  do_ $CTX eval $CFG/eval.yaml name=table3-v2-$name model.model=$RUN/train/$name/final out_dir=$RUN/eval "${EVAL[@]}" \
    || { failed "$name: evaluation failed"; return 0; }
  do_ $PY benchmarks/table3_v2_report.py --slim $RUN/eval/table3-v2-$name/predictions.jsonl
  save run-$name $RUN/eval/table3-v2-$name $RUN/train/$name
  say "saved $name"
  [[ $DRY == 1 ]] || rm -rf "$RUN/train/$name/final"  # weights are not kept: the predictions are the result
}

arms() {  # $1 tier: a queue of arm x seed over GPUs x PER_GPU lanes
  local list=()
  case ${1:-1} in
    1) list=("${TIER1[*]}");; 2) list=("${TIER2[*]}");; all) list=("${TIER1[*]}" "${TIER2[*]}");;
    *) echo "tier must be 1, 2 or all" >&2; exit 2;;
  esac
  if [[ $TRAINEE != smollm2 && ${1:-1} != 1 ]]; then
    echo "the design repeats tier 1 only on $TRAINEE (DESIGN.md): arms 1" >&2; exit 2
  fi
  # tier 1 (the primary comparisons) before tier 2, seed by seed within a tier; one shared queue: each lane
  # claims the next job (mkdir is atomic), so a lane whose share is done or committed takes work from the
  # others instead of idling (a fixed k, k+lanes, ... share left lanes idle beside committed runs)
  local jobs=() a s tier
  for tier in "${list[@]}"; do
    for s in $SEEDS; do for a in $tier; do jobs+=("$a $s"); done; done
  done
  local lanes=$(( $(gpu_count) * PER_GPU ))
  [[ $DRY == 1 ]] && lanes=1
  [[ $DRY == 1 ]] || mkdir -p "$SAVE/logs"
  local lane start=$SECONDS claims
  claims=$(mktemp -d)
  for ((lane = 0; lane < lanes; lane++)); do
    (
      local k
      [[ $DRY == 1 ]] || export CUDA_VISIBLE_DEVICES=$(( lane % $(gpu_count) ))
      for ((k = 0; k < ${#jobs[@]}; k++)); do
        mkdir "$claims/$k" 2>/dev/null || continue  # another lane has it
        if (( DEADLINE > 0 && SECONDS - start > DEADLINE )); then echo "deadline: ${jobs[$k]} not started"; continue; fi
        if [[ $DRY == 1 ]]; then run ${jobs[$k]}
        else run ${jobs[$k]} >> "$SAVE/logs/lane$lane.log" 2>&1; fi
      done
    ) &
  done
  wait
  rm -rf "$claims"
  [[ $DRY == 1 ]] || tail -n 2 "$SAVE"/logs/lane*.log
}

pack() {  # $OUT: table3_v2_results.tgz (saved/) and one table3_v2_data-NAME.txz per saved_data/NAME.tar
  say pack  # each file stays under the 16 MiB a GPU call returns (docs/gpu.md); a bigger one goes in .partNN pieces
  local t name
  do_ mkdir -p "$OUT" "$SAVE"  # an empty saved/ when nothing was saved yet: the archive still comes back
  do_ tar czf "$OUT/$RESULTS" -C "$RUN" saved
  for t in "$R"/saved_data/*.tar; do
    [[ -f $t ]] || continue
    name=$OUT/table3_v2_data-$(basename "$t" .tar).txz
    [[ $DRY == 1 ]] && { echo "xz $t > $name"; continue; }
    rm -f "$name" "$name".part*
    xz -T0 -c "$t" > "$name"
    if (( $(stat -c %s "$name") > PART_BYTES )); then command split -b "$PART_BYTES" -d "$name" "$name.part"; rm "$name"; fi
  done
  [[ $DRY == 1 ]] || ls -la "$OUT"/table3_v2_*
}

restore() {  # $1: a folder with what earlier calls' pack returned (results, data-NAME.txz or its .partNN pieces)
  local dir=${1:-} f
  say "restore from $dir"
  shopt -s nullglob
  local data=("$dir"/table3_v2_data-*.txz "$dir"/table3_v2_data-*.txz.part00)
  [[ -n $dir && ( -f $dir/$RESULTS || ${#data[@]} -gt 0 ) ]] \
    || { echo "restore: no $RESULTS or table3_v2_data-*.txz in '$dir'" >&2; exit 2; }
  do_ mkdir -p "$R"
  if [[ -f $dir/$RESULTS ]]; then
    do_ mkdir -p "$RUN" && do_ tar xzf "$dir/$RESULTS" -C "$RUN"  # saved/: a run saved there is not run again
    [[ -f $SAVE/gen-state.tgz ]] && do_ tar xzf "$SAVE/gen-state.tgz"  # the generation runs' stage markers
  fi
  for f in "${data[@]}"; do  # each holds its paths (pipeline runs, arms/ with arms.json) from the repository root
    [[ $DRY == 1 ]] && { echo "tar xJf $f"; continue; }
    if [[ $f == *.part00 ]]; then cat "${f%.part00}".part?? | tar xJf -; else tar xJf "$f"; fi
  done
  [[ $DRY == 1 || ! -f $R/arms/arms.json ]] || check_arms
  [[ $DRY == 1 ]] || ls "$R"
}

check_arms() {  # every arm file against the sha256 that arms.json recorded when prep wrote it
  $PY - "$R/arms" <<'PY'
import hashlib, json, sys
from pathlib import Path
folder = Path(sys.argv[1])
arms = json.loads((folder / "arms.json").read_text()).get("arms", {})
bad = [a for a, i in arms.items() if "sha256" in i and (not (folder / f"{a}.jsonl").exists()
       or hashlib.sha256((folder / f"{a}.jsonl").read_bytes()).hexdigest() != i["sha256"])]
if bad:
    sys.exit(f"restore: these arm files are missing or differ from arms.json's sha256: {' '.join(bad)}")
print(f"restore: {len(arms)} arm files match arms.json")
PY
}

report() {
  say report
  local extra=()  # another trainee trained tier 1 on the same arm files: their summary is SmolLM2's arms.json
  [[ $TRAINEE == smollm2 ]] || extra=(--trainee "$TRAINEE" --arms "$(IFS=,; echo "${TIER1[*]}")" --arms-json $PAGE/data/arms.json)
  do_ $PY benchmarks/table3_v2_report.py --src "${SRC:-$SAVE}" --data "$DATA" --out "$TPAGE" "${extra[@]}"
}

[[ $# -gt 0 ]] || { sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 2; }  # the header comment, however long
while [[ $# -gt 0 ]]; do
  step=$1; shift
  case $step in
    split) split;;
    writers) writers;;
    gen) gen;;
    prep) prep;;
    arms) arms "${1:-1}"; [[ $# -gt 0 ]] && shift;;
    run) run "$1" "$2"; shift 2;;
    pack) pack;;
    report) report;;
    restore) restore "${1:-}"; [[ $# -gt 0 ]] && shift;;
    *) echo "unknown step $step (split, writers, gen, prep, arms TIER, run ARM SEED, pack, report, restore DIR)" >&2; exit 2;;
  esac
done
if [[ -s $FAILED ]]; then
  echo "$(wc -l < "$FAILED") run(s) failed (see $SAVE/logs): $(paste -sd ';' "$FAILED")" >&2
  exit 1
fi
