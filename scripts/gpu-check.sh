#!/usr/bin/env bash
# GPU checks of the torch / cuda memory types, for a machine with an NVIDIA GPU and PyTorch 2.11
# (its libtorch is the one the binaries load). Builds nothing: run `bash scripts/gpu-check.sh --build`
# on a build machine first, which puts release binaries (features torch,cuda) into .devbin/, then
# copy the checkout there and run `bash scripts/gpu-check.sh` (logs under $OUT or target/gpu-check).
#
# It runs: `hcs devices`; the torch converter unit tests; the torch variants against the ndarray
# versions on cuda:0 (and on the CPU); the cuda kernels against the ndarray versions; torch ⇄ cuda
# sharing; a real device out-of-memory through the executor (retry, CPU fallback, require fails);
# kernel timings CPU vs GPU (hcs-kernels/examples/device_bench.rs); then the canonical pipeline
# with gpu_policy = never vs prefer, alternating, on synthetic 1024² plates (3×3 sites, 2 channels,
# 3 z): 8 wells with 16 workers and 2 wells with 2 workers; the outputs compared file by file;
# the seconds of each step's loads, calls, conversions and stores summed over groups (from the
# run's trace-level log). `--pipelines` runs only `hcs devices` and the pipelines.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.devbin

if [ "${1:-}" = "--build" ]; then
  set -e
  source <(bash scripts/setup-torch.sh --env)
  cargo build --release --features torch,cuda
  mkdir -p "$BIN"
  cp target/release/hcs "$BIN/hcs"
  for pt in hcs-kernels:torch_equivalence hcs-kernels:cuda_equivalence hcs-exec:gpu_out_of_memory; do
    p=${pt%%:*} t=${pt##*:}
    exe=$(cargo test --release --features torch,cuda -p "$p" --test "$t" --no-run --message-format=json 2>/dev/null \
      | python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("executable"): print(m["executable"])' | tail -1)
    cp "$exe" "$BIN/$t"
  done
  for p in hcs-core hcs-device; do
    exe=$(cargo test --release --features torch,cuda -p "$p" --lib --no-run --message-format=json 2>/dev/null \
      | python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("executable"): print(m["executable"])' | tail -1)
    cp "$exe" "$BIN/${p//-/_}_lib"
  done
  cargo build --release --features torch,cuda -p hcs-kernels --example device_bench
  cp target/release/examples/device_bench "$BIN/device_bench"
  strip "$BIN"/*
  du -sh "$BIN"
  exit 0
fi

LOG=${OUT:-target/gpu-check}
mkdir -p "$LOG"
source scripts/gpu-env.sh
echo "torch libs: $TORCH_LIB; nvrtc: $NVRTC_LIB"
nvidia-smi -L
status=0
step() { echo "== $*"; "$@" || { echo "FAILED: $*"; status=1; }; }
step "$BIN/hcs" devices
if [ "${1:-}" != "--pipelines" ]; then
step "$BIN/hcs_core_lib" --test-threads 4
step "$BIN/hcs_device_lib" --test-threads 4
step env HCS_TORCH_DEVICE=cuda "$BIN/torch_equivalence" --nocapture --test-threads 1
step "$BIN/torch_equivalence"
step "$BIN/cuda_equivalence"
step "$BIN/gpu_out_of_memory"

echo "== kernels: CPU (all cores) vs torch on cuda:0 vs cuda, 9 × 1024² stack"
step "$BIN/device_bench"
fi

# One plate, GPU (prefer) vs CPU (never) alternating: wall times, seconds per step summed over
# wells, then the two output trees compared file by file.
compare_on() {
  local name=$1 wells=$2 workers=$3 rounds=$4
  echo "== canonical pipeline on $name ($wells), GPU (prefer) vs CPU (never), $workers workers"
  local P=/tmp/hcs-gpu-bench/$name
  rm -rf "$P"
  "$BIN/hcs" synth --out "$P/plate" --tile 1024 --wells "$wells" > /dev/null || status=1
  printf 'gpu_policy = "never"\n' > "$P/cpu.toml"
  printf 'gpu_policy = "prefer"\ngpu_slots = 8\n' > "$P/gpu.toml"
  for round in $(seq "$rounds"); do
    for mode in cpu gpu; do
      rm -rf "$P/$mode"
      start=$(date +%s.%N)
      HCS_LOG=debug,hcs_exec=trace "$BIN/hcs" run examples/pipelines/canonical.toml --plate "$P/plate" --out "$P/$mode" --workers "$workers" \
        --config "$P/$mode.toml" > "$LOG/run_${name}_$mode.txt" 2>&1 || { status=1; tail -5 "$LOG/run_${name}_$mode.txt"; }
      end=$(date +%s.%N)
      echo "round $round $mode: $($PY -c "print(round($end - $start, 2))") s wall"
      grep -E 'wells done|steps on a GPU|out of memory' "$LOG/run_${name}_$mode.txt"
      $PY - "$LOG/run_${name}_$mode.txt" <<'PYEOF'
import re, sys, collections
total = collections.defaultdict(float)
for line in open(sys.argv[1]):
    m = re.search(r"step=(\d+) .*seconds=([\d.e-]+)", line)
    if m and "step done" in line:
        total[int(m.group(1))] += float(m.group(2))
print("  seconds per step, summed over wells:", ", ".join(f"{k}: {v:.2f}" for k, v in sorted(total.items())))
# Where a step's time goes, summed over groups: loading its input, its calls (converting each
# call's input, then the call), keeping the output where the plan says, storing the step.
parts = collections.defaultdict(float)
for line in open(sys.argv[1]):
    f = dict(re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", line))
    if "group done" in line:
        for k in ("load", "calls", "keep"):
            parts[(int(f["step"]), k)] += float(f[k + "_seconds"])
    elif "call done" in line:
        name = f["function"].strip('"') + "@" + f["memory"]
        parts[(int(f["step"]), "convert to " + name)] += float(f["convert_seconds"])
        parts[(int(f["step"]), name)] += float(f["call_seconds"])
    elif "step stored" in line:
        parts[(int(f["step"]), "store")] += float(f["seconds"])
for step in sorted({s for s, _ in parts}):
    print(f"  step {step}:", ", ".join(f"{k} {v:.3f}" for (s, k), v in sorted(parts.items()) if s == step))
PYEOF
    done
  done
  $PY scripts/compare_outputs.py "$P/cpu" "$P/gpu" || status=1
}
compare_on scale A01,A02,A03,A04,B01,B02,B03,B04 16 2
compare_on standard A01,A02 2 3
echo "gpu-check status: $status"
exit $status
