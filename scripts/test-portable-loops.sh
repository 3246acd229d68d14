#!/usr/bin/env bash
# Runs the tests of the dispatched hot loops (see hcs-kernels/src/vector.rs) on an emulated CPU
# without AVX, so the portable versions, the ones a CPU without AVX2 + FMA runs, are executed
# and checked against the same reference values, not only compiled. The machine CI runs on has
# AVX2, so without this only the AVX2 versions would ever run.
#
# qemu-user (Debian's package, installed with apt-get when qemu-x86_64 is missing) runs the test
# binaries as a Nehalem CPU: SSE4.2, no AVX. The check first asks `hcs devices` under the same
# emulation, so a qemu that let AVX through would fail here rather than test the wrong loops.
#
#   bash scripts/test-portable-loops.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -m)" = x86_64 ] || { echo "not x86-64: the hot loops have one version here"; exit 0; }

command -v qemu-x86_64 > /dev/null || bash scripts/apt-install.sh qemu-user
CPU=(qemu-x86_64 -cpu Nehalem)

cargo build -q --bin hcs
said=$("${CPU[@]}" "${CARGO_TARGET_DIR:-target}/debug/hcs" devices)
echo "$said" | grep -q "hot loops run their portable versions" \
  || { echo "the emulated CPU still runs the AVX2 loops:"; echo "$said"; exit 1; }
echo "emulated CPU: $(echo "$said" | grep '^CPU:')"

# The test binaries `cargo test` built: hcs-kernels' unit tests, its scikit-image / SciPy
# reference tests and stitching ground truth, hcs-exec's unit tests (the QC focus score) and
# hcs-vfs's (the narrowing of planes to their storage type).
mapfile -t bins < <(cargo test -q -p hcs-kernels -p hcs-exec -p hcs-vfs --lib --test references --test stitching --no-run \
  --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
[ "${#bins[@]}" -eq 5 ] || { echo "expected 5 test binaries, found ${#bins[@]}: ${bins[*]}"; exit 1; }
# Skipped under emulation only (it runs natively in the README test command): the check that the
# kernel records the huge-page mark, since qemu-user answers madvise itself without passing the
# hint to the host's kernel, whose /proc/self/smaps the test reads.
for bin in "${bins[@]}"; do
  echo "-- $(basename "$bin") on the emulated CPU"
  "${CPU[@]}" "$bin" -q --skip huge_pages::tests::the_kernel_records_the_mark_on_the_blocks_mapping
done
