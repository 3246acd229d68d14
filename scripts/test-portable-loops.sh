#!/usr/bin/env bash
# Runs the tests of the dispatched hot loops (see hcs-kernels/src/vector.rs) on emulated CPUs
# that lack what the machine has, so each version of the loops is executed and checked against
# the same reference values, not only compiled: the portable versions (a CPU without AVX2 + FMA
# runs them) and the AVX2 ones (a CPU without AVX-512 runs them). The machine CI runs on may have
# AVX-512; without this only the versions it picks would ever run.
#
# qemu-user (Debian's package, installed with apt-get when qemu-x86_64 is missing) runs the test
# binaries as a Nehalem CPU (SSE4.2, no AVX), then as a Haswell one (AVX2 + FMA; qemu emulates
# no AVX-512). Each round first asks `hcs devices` under the same emulation, so a qemu that let
# more through would fail here rather than test the wrong loops.
#
#   bash scripts/test-portable-loops.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -m)" = x86_64 ] || { echo "not x86-64: the hot loops have one version here"; exit 0; }

command -v qemu-x86_64 > /dev/null || bash scripts/apt-install.sh qemu-user

# Everything here comes from the build of the README test command (`cargo test --workspace`):
# the same command with --no-run lists its artifacts without compiling anything new when the tests
# were built already. A narrower command (`cargo build --bin hcs`, `cargo test -p hcs-kernels`)
# would resolve other features for shared dependencies (serde, memchr, …) and rebuild most of the
# tree: about seven minutes of CI.
#
# The `hcs` binary, and the test binaries: hcs-kernels' unit tests, its scikit-image / SciPy
# reference tests and stitching ground truth, hcs-exec's unit tests (the QC focus score) and
# hcs-vfs's (the narrowing of planes to their storage type).
mapfile -t artifacts < <(cargo test -q --workspace --no-run --message-format=json | python3 -c '
import json, sys
wanted = {("hcs", "bin"), ("hcs_kernels", "lib"), ("references", "test"), ("stitching", "test"),
          ("hcs_exec", "lib"), ("hcs_vfs", "lib")}
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    target = m["target"]
    kind = "test" if target["kind"] == ["test"] else target["kind"][0]
    is_test = m["profile"]["test"]
    # The hcs binary itself (not its unit tests); libraries and tests as their test binaries.
    if (target["name"], kind) in wanted and is_test != (kind == "bin"):
        print(("bin " if kind == "bin" else "test ") + m["executable"])')
hcs_bin=""
bins=()
for artifact in "${artifacts[@]}"; do
  case "$artifact" in
    "bin "*) hcs_bin="${artifact#bin }" ;;
    "test "*) bins+=("${artifact#test }") ;;
  esac
done
[ -n "$hcs_bin" ] || { echo "the test build made no hcs binary"; exit 1; }
[ "${#bins[@]}" -eq 5 ] || { echo "expected 5 test binaries, found ${#bins[@]}: ${bins[*]}"; exit 1; }

# Skipped under emulation only (they run natively in the README test command):
# - the checks that the kernel records the huge-page marks (`hg`, and `nh` after the watch's
#   verdict), since qemu-user answers madvise itself without passing the hint to the host's
#   kernel, whose /proc/self/smaps the tests read;
# - the breadth of the stitching tests: emulated, the 5×5 synthetic grids and the tissue plates
#   took about 3 minutes per CPU. The same registration and assembly loops run on the 3×3
#   synthetic grids, the star-field plates at every overlap and the other stitching tests;
# - the TIFF writer's strip-by-strip equivalence test (hcs-vfs, unoptimized in test builds: 5 s
#   natively, 30 s emulated), a test of the encoder; the narrowing loop it calls is checked on
#   its own by `plane::tests`.
skips=(
  huge_pages::tests::the_kernel_records_the_mark_on_the_blocks_mapping
  huge_pages::tests::sampling_fresh_blocks_keeps_them_zero_and_a_verdict_gives_the_rest_base_pages
  positions_match_ground_truth_on_synthetic_5x5_grids
  real_tissue_plates_stitch_at_any_overlap_with_default_parameters
  tiff::tests::a_plane_narrowed_strip_by_strip_is_the_file_of_the_plane_narrowed_whole
)
skip_args=()
for s in "${skips[@]}"; do skip_args+=(--skip "$s"); done
# qemu warns about each feature of a model it does not emulate (TSX, x2APIC, …; none is in a loop).
quiet() { grep -v "TCG doesn't support requested feature" || true; }
run_on() { # CPU model, what `hcs devices` must say on it
  local cpu=(qemu-x86_64 -cpu "$1") said
  said=$("${cpu[@]}" "$hcs_bin" devices 2> >(quiet >&2))
  echo "$said" | grep -q "$2" || { echo "the emulated $1 CPU does not run the loops expected:"; echo "$said"; exit 1; }
  echo "emulated $1 CPU: $(echo "$said" | grep '^CPU:')"
  for bin in "${bins[@]}"; do
    echo "-- $(basename "$bin") on the emulated $1 CPU"
    "${cpu[@]}" "$bin" -q --exact "${skip_args[@]}" 2> >(quiet >&2)
  done
}
run_on Nehalem "hot loops run their portable versions"
run_on Haswell "hot loops run their AVX2 + FMA versions"
