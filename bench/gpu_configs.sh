#!/usr/bin/env bash
# The canonical pipeline on a GPU machine under several configurations, alternating, on
# synthetic 1024² plates (3×3 sites, 2 channels, 3 z): the CPU path (`gpu_policy = "never"`),
# the default GPU plan (`prefer`: cuda, then torch, then ndarray variants) with 8 GPU slots or
# the built-in 2 (`gpu_defaults`), the GPU without the torch variants (`prefer = ["cuda",
# "ndarray"]`: the mosaics are assembled on the CPU), each also with every well of the plate at
# once (modes ending in `_all`). Prints wall and run seconds per run and the largest difference
# of each GPU output tree from the CPU's. Needs the binaries of `bash scripts/gpu-check.sh --build`
# (.devbin/) and a python3 with torch, numpy and tifffile (the GPU machine's).
#
#   bash bench/gpu_configs.sh [ROUNDS]      # default 3
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BIN=.devbin/hcs
source scripts/gpu-env.sh
status=0
P=/tmp/hcs-gpu-configs
rm -rf "$P" && mkdir -p "$P"
printf 'gpu_policy = "never"\n' > "$P/cpu.toml"
printf 'gpu_policy = "prefer"\ngpu_slots = 8\n' > "$P/gpu.toml"
printf 'gpu_policy = "prefer"\ngpu_slots = 8\nprefer = ["cuda", "ndarray"]\n' > "$P/gpu_cuda.toml"
cp "$P/gpu_cuda.toml" "$P/gpu_cuda_all.toml"
cp "$P/gpu.toml" "$P/gpu_all.toml"
# The built-in GPU defaults (gpu_slots = 2), with the default wells at once and with all of them.
printf 'gpu_policy = "prefer"\n' > "$P/gpu_defaults.toml"
cp "$P/gpu_defaults.toml" "$P/gpu_defaults_all.toml"

# plate name, wells, workers, modes
measure() {
  local name=$1 wells=$2 workers=$3
  shift 3
  echo "== $name ($wells), $workers workers"
  "$BIN" synth --out "$P/$name/plate" --tile 1024 --wells "$wells" > /dev/null || status=1
  for round in $(seq "$ROUNDS"); do
    for mode in "$@"; do
      local extra=()
      [[ "$mode" == *_all ]] && extra=(--wells-at-once "$(tr -cd , <<< "$wells," | wc -c)")
      rm -rf "$P/$name/$mode"
      start=$(date +%s.%N)
      "$BIN" run examples/pipelines/canonical.toml --plate "$P/$name/plate" --out "$P/$name/$mode" \
        --workers "$workers" --config "$P/$mode.toml" "${extra[@]}" > "$P/$name/$mode.log" 2>&1 \
        || { status=1; tail -5 "$P/$name/$mode.log"; }
      end=$(date +%s.%N)
      run=$(grep -o 'failed in [0-9.]* s' "$P/$name/$mode.log" | grep -o '[0-9.]*')
      echo "round $round $mode: $($PY -c "print(round($end - $start, 2))") s wall, run $run s"
    done
  done
  for mode in "$@"; do
    [ "$mode" = cpu ] && continue
    $PY scripts/compare_outputs.py "$P/$name/cpu" "$P/$name/$mode" || status=1
  done
}
# SCALE_MODES / STANDARD_MODES choose other modes (also gpu_all, gpu_defaults, gpu_defaults_all).
measure scale A01,A02,A03,A04,B01,B02,B03,B04 16 ${SCALE_MODES:-cpu gpu gpu_cuda gpu_cuda_all}
[ -n "${STANDARD_MODES-x}" ] && measure standard A01,A02 2 ${STANDARD_MODES:-cpu gpu gpu_cuda}
echo "gpu_configs status: $status"
exit $status
