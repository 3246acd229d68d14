#!/usr/bin/env bash
# Issue 20's acceptance figures, measured with the release binary on a small synthetic plate
# (4 wells, 3×3 sites, 2 channels, 3 z, tile 128), per backend:
#   1. N trials of two concurrent `hcs run` on one output: how often the second was refused
#      (naming the holder) and the first's output equalled a clean run's;
#   2. the tamper matrix: delete a chunk/file, flip 4 bytes, delete a well → which wells a
#      re-run redoes, and whether the tree then equals the clean run's;
#   3. sha256 of the whole output tree (without .hcs/) for --workers 1, 2 and 4.
#   bash bench/nothing_lost.sh [N]        (default N = 20)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-20}"
cargo build --release -q
HCS="$PWD/target/release/hcs"
PIPE="$PWD/examples/pipelines/canonical.toml"
W="$PWD/target/nothing-lost"
rm -rf "$W"; mkdir -p "$W"
"$HCS" synth --out "$W/plate" --wells A01,A02,B01,B02 --tile 128 > /dev/null
tree_sha() { (cd "$1" && find . -path ./.hcs -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16); }
run() { "$HCS" run "$PIPE" --plate "$W/plate" --out "$1" --backend "$2" "${@:3}"; }

for backend in disk zarr; do
  run "$W/clean-$backend" "$backend" --workers 2 > /dev/null 2>&1
  clean=$(tree_sha "$W/clean-$backend")
  refused=0; identical=0
  for i in $(seq 1 "$N"); do
    out="$W/trial-$backend"; rm -rf "$out"
    "$HCS" run "$PIPE" --plate "$W/plate" --out "$out" --backend "$backend" --workers 2 > "$W/first.log" 2>&1 &
    first=$!
    # Start the second once the first holds the lock (its lock file names it).
    for _ in $(seq 1 500); do grep -q "\"pid\": *$first" "$out/.hcs/lock" 2>/dev/null && break; sleep 0.002; done
    if ! run "$out" "$backend" --workers 2 > "$W/second.log" 2>&1 && grep -q "pid $first" "$W/second.log"; then
      refused=$((refused + 1))
    fi
    wait "$first"
    [ "$(tree_sha "$out")" = "$clean" ] && identical=$((identical + 1))
  done
  echo "$backend: concurrent runs: second refused naming the holder $refused/$N; first equal to a clean run $identical/$N"

  for w in 1 2 4; do
    rm -rf "$W/w$w-$backend"; run "$W/w$w-$backend" "$backend" --workers "$w" > /dev/null 2>&1
    echo "$backend: --workers $w tree sha256 $(tree_sha "$W/w$w-$backend") (clean $clean)"
  done

  for tamper in delete flip well; do
    out="$W/tamper-$backend-$tamper"; rm -rf "$out"; cp -r "$W/clean-$backend" "$out"
    if [ "$backend" = disk ]; then
      victim=$(find "$out/images" -name 'A01_*' -type f | head -1)
      flipped=$(find "$out/images" -name 'A02_*' -type f | head -1)
      well_files=$(find "$out/images" -name 'B01_*' -type f)
    else
      victim=$(find "$out/images.ome.zarr/A/1" -path '*/c/*' -type f | head -1)
      flipped=$(find "$out/images.ome.zarr/A/2" -path '*/c/*' -type f | head -1)
      well_files="$out/images.ome.zarr/B/1"
    fi
    case $tamper in
      delete) rm -f "$victim"; what="a chunk/file of A01 deleted" ;;
      flip) printf '\xde\xad\xbe\xef' | dd of="$flipped" bs=1 seek=64 conv=notrunc status=none; what="4 bytes of A02 flipped" ;;
      well) rm -rf $well_files; what="well B01 deleted" ;;
    esac
    summary=$(run "$out" "$backend" --workers 2 2>/dev/null | head -1)
    same=$([ "$(tree_sha "$out")" = "$clean" ] && echo identical || echo DIFFERENT)
    echo "$backend: $what → ${summary#*: } → tree $same"
  done
done
