#!/usr/bin/env bash
# The NIAH pilot at 32k (PAPER.md §1, issue 26) on Gemma-3-270M base: SFT1-SFT4 and SFT3-matched
# (SFT3's ~1k data in SFT4's token count and steps) with seeds, each tested on the 2k-32k essay grid,
# the needle-only tests and held-out HotpotQA, against the untuned base model. The design (arms,
# seeds, comparisons, the effective-length threshold, GPU time) is docs/results/pilot_32k/DESIGN.md.
#
#   bash benchmarks/pilot32k.sh inputs        # CPU with the asset packages; packs runs/pilot32k/inputs.tar.xz
#   bash benchmarks/pilot32k.sh carry         # after inputs: the two small archives a GPU call carries instead
#                                             #   (train.tar.xz: general + the arms' export files, 4.5 MB; eval.tar.xz:
#                                             #   grid, needle-only and HotpotQA test items, 3.6 MB); `tar xJf` both there
#   bash benchmarks/pilot32k.sh base sft3-s0 sft4-s1 sft3m-s0 ...   # GPU: train the arm (not base), evaluate it
#   bash benchmarks/pilot32k.sh sft4-s0:train sft4-s0:eval      # an arm in two calls (each < 10 min)
#   bash benchmarks/pilot32k.sh all           # every arm of the design, one after another
#   bash benchmarks/pilot32k.sh collect       # copy finished predictions into docs/results/pilot_32k/
#   bash benchmarks/pilot32k.sh report        # tables, plot, verdicts (benchmarks/pilot32k_report.py)
#
# Arms: base, sft1-sS, sft2-sS, sft3-sS, sft4-sS, sft3m-sS (S = training seed and data order). Each
# arm finishes on its own: it writes runs/pilot32k/done/<arm> and packs its predictions and training
# summary into $OUT/pilot32k-<arm>.tar (OUT defaults to runs/pilot32k/out); a finished arm is
# skipped when given again (FORCE=1 reruns it). sft3m-sS takes max_steps from sft4-sS's summary, so
# run sft4-sS first. On several GPUs run one lane per GPU (CUDA_VISIBLE_DEVICES). CTX overrides the
# command (default: ctxsynth, or `$PY -m ctxsynth.cli` where no ctxsynth is on PATH), PY the python, DRY=1
# prints the commands instead of running them.
set -euo pipefail
PY=${PY:-python3}
if [[ -z ${CTX:-} ]]; then  # the command where installed, else the module (a GPU machine with carried wheels)
  if command -v ctxsynth >/dev/null; then CTX=ctxsynth; else CTX="$PY -m ctxsynth.cli"; fi
fi
DRY=${DRY:-0}
FORCE=${FORCE:-0}
OUT=${OUT:-runs/pilot32k/out}
CFG=configs/pilot32k
R=runs/pilot32k
RESULTS=docs/results/pilot_32k
ALL_ARMS="base sft1-s0 sft1-s1 sft2-s0 sft2-s1 sft3-s0 sft3-s1 sft3-s2 sft4-s0 sft4-s1 sft4-s2 sft3m-s0 sft3m-s1 sft3m-s2"
say() { printf '\n== %s  (%s)\n' "$1" "$(date +%T)"; }
do_() { if [[ $DRY == 1 ]]; then echo "$*"; else "$@"; fi; }

niah_file() {  # the NIAH training file of an arm kind (none for sft1)
  case $1 in
    sft1) echo "";;
    sft2|sft3|sft3m|sft4) echo "$R/niah/$1/export/trl_messages/data.jsonl";;
    *) echo "unknown arm kind $1" >&2; exit 2;;
  esac
}

inputs() {
  say inputs
  [[ -f $R/general.jsonl ]] || do_ $PY benchmarks/pilot.py general $R/general.jsonl
  [[ -d $R/niah/sft2 ]] || do_ $CTX niah $CFG/sft2_needle_only.yaml --out $R/niah/sft2
  [[ -d $R/niah/sft3 ]] || do_ $CTX niah $CFG/sft3_short_haystack.yaml --out $R/niah/sft3
  [[ -d $R/niah/sft3m ]] || do_ $CTX niah $CFG/sft3_matched.yaml --out $R/niah/sft3m
  [[ -d $R/niah/sft4 ]] || do_ $CTX niah $CFG/sft4_16k.yaml --out $R/niah/sft4
  [[ -d $R/niah/grid ]] || do_ $CTX niah $CFG/test_grid.yaml --out $R/niah/grid
  [[ -d $R/niah/needle ]] || do_ $CTX niah $CFG/test_needle_only.yaml --out $R/niah/needle
  [[ -f runs/items/hotpotqa_heldout200.jsonl.gz ]] || do_ $CTX eval configs/eval/builtin_qa.yaml builtin.squad=0 \
      builtin.hotpotqa=200 --write-items runs/items/hotpotqa_heldout200.jsonl.gz
  do_ tar cJf $R/inputs.tar.xz $R/general.jsonl $R/niah runs/items/hotpotqa_heldout200.jsonl.gz
}

evaluate() {  # $1 arm, $2 model
  do_ $CTX eval $CFG/eval.yaml name=pilot32k-$1 model.model=$2
  do_ $CTX eval $CFG/eval.yaml name=pilot32k-$1-needle model.model=$2 "niah=[$R/niah/needle/test]" 'items=[]'
}

matched_steps() {  # SFT4's optimizer steps for the same seed (this machine's run, else the committed summary)
  local summary=$R/train/sft4-s$1/summary.json
  [[ -f $summary ]] || summary=$RESULTS/train/sft4-s$1-summary.json
  if [[ $DRY == 1 && ! -f $summary ]]; then echo "STEPS_OF_SFT4_S$1"; return; fi
  [[ -f $summary ]] || { echo "sft3m-s$1 needs sft4-s$1 first (no $R/train/sft4-s$1/summary.json nor $summary)" >&2; exit 2; }
  $PY -c "import json,sys; print(json.load(open(sys.argv[1]))['global_step'])" "$summary"
}

save() {  # pack one arm's results into $OUT (one archive per arm: calls return few files)
  local name=$1 files=()
  for f in runs/eval/pilot32k-$name/predictions.jsonl runs/eval/pilot32k-$name-needle/predictions.jsonl \
           $R/train/$name/summary.json; do [[ -f $f ]] && files+=("$f"); done
  if [[ $DRY == 1 ]]; then echo "tar cf $OUT/pilot32k-$name.tar ..."; return; fi
  mkdir -p "$OUT" $R/done
  tar cf "$OUT/pilot32k-$name.tar" "${files[@]}"
  touch $R/done/$name
}

arm() {  # $1 arm, $2 part: both (default), train or eval (SFT4 and SFT3-matched: ~7 + ~3 min)
  local name=$1 part=${2:-both} kind=${1%-s*} seed=${1##*-s}
  if [[ -f $R/done/$name && $FORCE != 1 ]]; then say "$name: done already (FORCE=1 reruns)"; return; fi
  say "$name ($part)"
  if [[ $name == base ]]; then evaluate base gemma3-270m; save base; return; fi
  if [[ $part != eval && ( $FORCE == 1 || ! -f $R/train/$name/summary.json ) ]]; then
    local file extra=(); file=$(niah_file "$kind")
    [[ $kind == sft3m ]] && extra+=("max_steps=$(matched_steps "$seed")")
    do_ $CTX train $CFG/train.yaml output_dir=$R/train/$name "data.train_files=[${file}]" \
        seed=$seed data.shuffle_seed=$seed "${extra[@]}"
  fi
  [[ $part == train ]] && return
  evaluate "$name" $R/train/$name/final
  save "$name"
}

collect() {  # predictions into the results folder, gzipped (committed: the report reads only these)
  say collect
  mkdir -p $RESULTS/predictions $RESULTS/train
  for d in runs/eval/pilot32k-*; do
    [[ -f $d/predictions.jsonl ]] || continue
    local name=${d#runs/eval/pilot32k-} kind=grid
    [[ $name == *-needle ]] && { kind=needle; name=${name%-needle}; }
    do_ gzip -9nc "$d/predictions.jsonl" > "$RESULTS/predictions/$name-$kind.jsonl.gz"
  done
  for s in $R/train/*/summary.json; do [[ -f $s ]] && cp "$s" "$RESULTS/train/$(basename "$(dirname "$s")")-summary.json"; done
}

carry() {  # what the GPU calls need, small: the training files of every arm, the test items
  say carry
  do_ tar cJf $R/train.tar.xz $R/general.jsonl $R/niah/sft2/export/trl_messages $R/niah/sft3/export/trl_messages \
      $R/niah/sft3m/export/trl_messages $R/niah/sft4/export/trl_messages
  do_ tar cJf $R/eval.tar.xz $R/niah/grid/test $R/niah/needle/test runs/items/hotpotqa_heldout200.jsonl.gz
  [[ $DRY == 1 ]] || ls -l $R/train.tar.xz $R/eval.tar.xz
}

report() {
  say report
  do_ $PY benchmarks/pilot32k_report.py --predictions $RESULTS/predictions --design $RESULTS/design.json --out $RESULTS
}

[[ $# -gt 0 ]] || { awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2; }
for step in "$@"; do
  case $step in
    inputs) inputs;;
    carry) carry;;
    collect) collect;;
    report) report;;
    all) for a in $ALL_ARMS; do arm "$a"; done;;
    base|sft[1-4]-s[0-9]|sft3m-s[0-9]) arm "$step";;
    sft[1-4]-s[0-9]:train|sft3m-s[0-9]:train|sft[1-4]-s[0-9]:eval|sft3m-s[0-9]:eval) arm "${step%:*}" "${step#*:}";;
    *) echo "unknown step $step (inputs, carry, base, sft1-sS..sft4-sS, sft3m-sS [:train|:eval], all, collect, report)" >&2; exit 2;;
  esac
done
