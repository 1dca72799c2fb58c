#!/usr/bin/env bash
# Ready a GPU machine without internet for the benchmark scripts, from what earlier calls carried
# into the ignored .carry/ folder (docs/gpu.md): idempotent, so every call may start with it.
#
#   bash benchmarks/gpu_setup.sh [ARCHIVE.tar.xz ...]
#   export PYTHONPATH=${SITE:-/root/site}:$PWD/src      # then run the benchmark in the same call
#
# - .carry/w/*.whl (the wheels of docs/gpu.md) -> pip install --no-deps --target SITE, once;
# - .carry/<model>/manifest.json with its pieces (benchmarks/carry_model.py split) -> joined into the
#   ctxsynth cache unless the model is there already (sha256 checked by carry_model.py join);
# - each ARCHIVE -> tar xJf here, unless its marker (ARCHIVE.done) says it was unpacked before.
# A missing piece or a damaged one stops the script with carry_model.py's message (which piece).
# Env: SITE (/root/site), PY (python3), CARRY (.carry).
set -euo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,14p' "$0"; exit 0; }
SITE=${SITE:-/root/site}
PY=${PY:-python3}
CARRY=${CARRY:-.carry}
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=$SITE:$(cd "$(dirname "$0")/.." && pwd)/src${PYTHONPATH:+:$PYTHONPATH}
say() { printf '== gpu_setup: %s  (%s)\n' "$1" "$(date +%T)"; }

shopt -s nullglob
wheels=("$CARRY"/w/*.whl)
if (( ${#wheels[@]} )) && [[ ! -f $SITE/.installed ]]; then
  say "installing ${#wheels[@]} wheels into $SITE"
  $PY -m pip install -q --no-deps --target "$SITE" "${wheels[@]}"
  touch "$SITE/.installed"
fi
for manifest in "$CARRY"/*/manifest.json; do
  name=$(basename "$(dirname "$manifest")")
  if $PY -c "import sys; from ctxsynth.models import gguf_path; gguf_path(sys.argv[1])" "$name" 2>/dev/null; then
    say "$name: in the cache already"
  else
    say "joining $name"
    $PY "$HERE/carry_model.py" join "$name" --dir "$CARRY"
  fi
done
for archive in "$@"; do
  if [[ -f $archive.done ]]; then say "$archive: unpacked before"; continue; fi
  say "unpacking $archive"
  tar xJf "$archive"
  touch "$archive.done"
done
$PY - <<'EOF'
import importlib.metadata as m, platform, torch
names = ["transformers", "trl", "datasets", "peft", "accelerate"]
have = {n: (m.version(n) if __import__("importlib").util.find_spec(n) else "-") for n in names}
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"== gpu_setup: {gpu}; torch {torch.__version__}; Python {platform.python_version()}; "
      + ", ".join(f"{k} {v}" for k, v in have.items()))
EOF
