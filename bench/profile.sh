#!/usr/bin/env bash
# Where a plate run's CPU time goes: `perf record` (DWARF call graphs) of `hcs run` with the
# canonical pipeline on the peer's standard plate (made by bench/plate_vs_peer.sh), then the top
# frames by self and inclusive time (bench/flame_top.py).
#   bash bench/profile.sh [HCS_BINARY] [N]     (default target/release/hcs, top 10)
set -euo pipefail
cd "$(dirname "$0")/.."
HCS="${1:-target/release/hcs}"
N="${2:-10}"
PLATE=target/plate-bench/standard
[ -d "$PLATE" ] || { echo "no $PLATE: run bench/plate_vs_peer.sh 1 standard first"; exit 2; }
command -v perf > /dev/null || { echo "perf is not installed (apt install linux-perf)"; exit 2; }
[ "$HCS" != target/release/hcs ] || cargo build --release -q
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
perf record -q -F 499 -g --call-graph dwarf,16384 -o "$WORK/perf.data" \
  "$HCS" run examples/pipelines/canonical.toml --plate "$PLATE" --out "$WORK/out" --workers 2 > /dev/null 2>&1
perf script -i "$WORK/perf.data" 2> /dev/null > "$WORK/perf.txt"
python3 bench/flame_top.py "$WORK/perf.txt" "$N"
