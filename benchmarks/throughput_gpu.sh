#!/usr/bin/env bash
# Issue 23's figures in two GPU calls (docs/results/eval_throughput.md): the prefill kernels'
# reproducibility across processes, the SmolLM2 1k-8k grid (packed with flash varlen against
# model.generate, then packed with `prefill_kernel: dense`), the Gemma-3 2k-32k grid with both
# prefill kernels, and the generation benchmark of docs/results/multigpu.md on the packed path.
#
#   bash benchmarks/throughput_gpu.sh inputs          # CPU, where the asset packages are: both grids ->
#                                                     #   runs/throughput_inputs.tar.xz (carry it; `tar xJf` there)
#   bash benchmarks/throughput_gpu.sh kernels smollm2 pack    # GPU machine, ~5 min (BASELINE=0 smollm2: ~2.5 min)
#   bash benchmarks/throughput_gpu.sh gemma generate pack     # a second call, ~7.5 min (Gemma-3 dense runs twice)
#
# kernels: parts 4 and 5 of benchmarks/decode_attention.py in two processes; prints, per kernel and shape,
#   whether the output's bits were the same in both (a kernel that changes them changes texts between runs).
# smollm2 / gemma: benchmarks/eval_throughput.py with each prefill kernel (SmolLM2's varlen run also times
#   model.generate, Gemma's do not: 2,000 items at 2k-32k take it ~18 min); prints the share of identical
#   texts between the two kernels, and for Gemma between two processes of `dense` (reproducible on the
#   H100, 2026-12-07, but not faster: it stays opt-in). gemma needs gemma3-270m where ctxsynth finds it
#   (benchmarks/carry_model.py).
# generate: benchmarks/multigpu_generate.py --devices 1 --path packed, twice (two processes), against
#   56.9 requests/s per GPU (docs/results/multigpu.md); prints whether the texts were the same.
# pack: every file written under $OUT/throughput into $OUT/throughput.tar (one file comes back whole).
#
# Env: PY (python3), OUT (runs/throughput_out), DEVICE (cuda), DTYPE (auto), SMOLLM2_ITEMS
# (runs/niah/test_grid_small/test), BASELINE=0 (SmolLM2's varlen run without model.generate, ~2 min less),
# GEMMA_ITEMS (runs/pilot32k/niah/grid/test), LIMIT (items per grid; default all), GEN_N (2048), GEN_TOKENS
# (300) and GEN_ROWS (rows per wave, 1024: the backend's default) for generate, SMOKE=1 (decode_attention's
# tiny shapes: the CPU test), DRY=1 prints the commands instead of running them.
set -euo pipefail
PY=${PY:-python3}
OUT=${OUT:-runs/throughput_out}
DEVICE=${DEVICE:-cuda}
DRY=${DRY:-0}
SMOLLM2_ITEMS=${SMOLLM2_ITEMS:-runs/niah/test_grid_small/test}
GEMMA_ITEMS=${GEMMA_ITEMS:-runs/pilot32k/niah/grid/test}
GEN_N=${GEN_N:-2048}
GEN_TOKENS=${GEN_TOKENS:-300}
GEN_ROWS=${GEN_ROWS:-1024}
DTYPE=${DTYPE:-auto}
LIMIT_ARGS=(); [[ -n ${LIMIT:-} ]] && LIMIT_ARGS=(--limit "$LIMIT")
SMOKE_ARGS=(); [[ ${SMOKE:-0} == 1 ]] && SMOKE_ARGS=(--smoke)
T=$OUT/throughput
say() { printf '\n== %s  (%s)\n' "$1" "$(date +%T)"; }
do_() { if [[ $DRY == 1 ]]; then echo "$*"; else "$@"; fi; }
tp() { do_ $PY benchmarks/eval_throughput.py --device "$DEVICE" --dtype "$DTYPE" "${LIMIT_ARGS[@]}" "$@"; }

same_texts() {  # $1 $2: eval_throughput --predictions files; the share of items whose packed texts agree
  [[ $DRY == 1 ]] && { echo "compare $1 $2"; return; }
  $PY - "$1" "$2" <<'EOF'
import json, sys
a, b = ([json.loads(line) for line in open(p)] for p in sys.argv[1:3])
same = sum(x["packed"] == y["packed"] for x, y in zip(a, b, strict=True))
print(f"identical texts, {sys.argv[1]} vs {sys.argv[2]}: {same}/{len(a)}")
if a[0].get("generate") is not None:
    gen = sum(x["generate"] == y["packed"] for x, y in zip(a, b, strict=True))
    print(f"identical texts, model.generate vs {sys.argv[2]}: {gen}/{len(a)}")
EOF
}

[[ $# -gt 0 ]] || { awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2; }
for step in "$@"; do
  case $step in
    inputs)
      say inputs
      [[ -d $SMOLLM2_ITEMS ]] || do_ ${CTX:-ctxsynth} niah configs/pilot/test_grid_small.yaml
      [[ -d $GEMMA_ITEMS ]] || do_ ${CTX:-ctxsynth} niah configs/pilot32k/test_grid.yaml --out runs/pilot32k/niah/grid
      do_ tar cJf runs/throughput_inputs.tar.xz "$SMOLLM2_ITEMS" "$GEMMA_ITEMS";;
    kernels)
      say kernels
      mkdir -p "$T"
      for run in 1 2; do
        do_ $PY benchmarks/decode_attention.py --device "$DEVICE" "${SMOKE_ARGS[@]}" --parts prefill_kernels dense_wrapper \
            --out "$T/kernels_$run.json"
      done
      if [[ $DRY != 1 ]]; then
        $PY - "$T/kernels_1.json" "$T/kernels_2.json" <<'EOF'
import json, sys
a, b = (json.load(open(p))["prefill_kernels"] for p in sys.argv[1:3])
for x, y in zip(a, b, strict=True):
    if "digest" in x and "digest" in y:
        print(f"{x['shape']:>18} {x['kernel']:<32} {x['tflop_per_s']:>6} TFLOP/s  same bits in both processes: "
              f"{x['digest'] == y['digest']}  within one: {x['repeat_equal'] and y['repeat_equal']}")
EOF
      fi;;
    smollm2)
      say smollm2
      mkdir -p "$T"
      base_args=(); [[ ${BASELINE:-1} == 0 ]] && base_args=(--skip-baseline)
      tp --items "$SMOLLM2_ITEMS" --batch-size 128 "${base_args[@]}" --out "$T/smollm2_varlen.json" \
         --predictions "$T/smollm2_varlen.jsonl"
      tp --items "$SMOLLM2_ITEMS" --skip-baseline --prefill-kernel dense --out "$T/smollm2_dense.json" \
         --predictions "$T/smollm2_dense.jsonl"
      same_texts "$T/smollm2_varlen.jsonl" "$T/smollm2_dense.jsonl";;
    gemma)
      say gemma
      mkdir -p "$T"
      for run in varlen dense dense_2; do  # dense twice (two processes): is it reproducible end to end?
        tp --model gemma3-270m --items "$GEMMA_ITEMS" --skip-baseline --prefill-kernel "${run%_2}" \
           --out "$T/gemma_$run.json" --predictions "$T/gemma_$run.jsonl"
      done
      same_texts "$T/gemma_varlen.jsonl" "$T/gemma_dense.jsonl"
      same_texts "$T/gemma_dense.jsonl" "$T/gemma_dense_2.jsonl";;
    generate)
      say generate
      mkdir -p "$T"
      for run in 1 2; do
        do_ $PY benchmarks/multigpu_generate.py --devices 1 --device "$DEVICE" --n "$GEN_N" --batch-size 256 \
            --max-tokens "$GEN_TOKENS" --max-rows "$GEN_ROWS" --path packed --warmup --out "$T/generate_$run.json" --texts "$T/generate_$run.jsonl"
      done
      [[ $DRY == 1 ]] || { cmp -s "$T/generate_1.jsonl" "$T/generate_2.jsonl" && echo "generate: same texts in both processes" \
                           || echo "generate: texts differ between the two processes"; };;
    pack)
      say pack
      mkdir -p "$T"
      do_ tar cf "$OUT/throughput.tar" -C "$OUT" throughput
      [[ $DRY == 1 ]] || ls -la "$OUT/throughput.tar";;
    *) echo "unknown step $step (inputs, kernels, smollm2, gemma, generate, pack)" >&2; exit 2;;
  esac
done
