#!/usr/bin/env bash
# Peak memory of `hcs run` (the canonical pipeline) on a 4-well and a 24-well synthetic plate,
# measured with /usr/bin/time -v: the executor keeps only `workers` wells in flight, so the
# 24-well plate should need about the memory of the 4-well one. Then one well's peak, measured
# (peak RSS with 1 worker, less the RSS of `hcs plan` on the same plate: the process without
# image data) and the heap bytes the first well held at its peak (counted by the binary's
# allocator, from its completion record) beside the compiler's estimate (`hcs plan`'s "peak in memory"), on the 4-well
# plate and, when bench/plate_vs_peer.sh has made it, the peer's standard plate (1024² tiles).
#   bash bench/run_memory.sh [TILE]        (default 512; 2 workers)
set -euo pipefail
cd "$(dirname "$0")/.."
TILE="${1:-512}"
WORK="target/run-memory"
rm -rf "$WORK"
mkdir -p "$WORK"
cargo build --release -q
HCS=target/release/hcs
wells() { # first N wells of a 384-well layout, row-major
  python3 -c "import sys; n=int(sys.argv[1]); print(','.join(f'{chr(65+i//24)}{i%24+1:02d}' for i in range(n)))" "$1"
}
for n in 4 24; do
  "$HCS" synth --out "$WORK/plate$n" --wells "$(wells "$n")" --tile "$TILE" > /dev/null
  /usr/bin/time -v "$HCS" run examples/pipelines/canonical.toml --plate "$WORK/plate$n" --out "$WORK/out$n" \
    --workers 2 > "$WORK/run$n.txt" 2> "$WORK/time$n.txt"
  rss=$(grep "Maximum resident set size" "$WORK/time$n.txt" | awk '{print $NF}')
  wall=$(grep "Elapsed (wall clock)" "$WORK/time$n.txt" | awk '{print $NF}')
  echo "$n wells: peak RSS $((rss / 1024)) MiB, wall $wall ($(tail -1 "$WORK/run$n.txt"))"
  echo "$rss" > "$WORK/rss$n"
done
python3 -c "a=int(open('$WORK/rss4').read()); b=int(open('$WORK/rss24').read()); print(f'24-well / 4-well peak RSS: {b/a:.2f}x')"

kib() { grep "Maximum resident set size" "$1" | awk '{print $NF}'; }
for plate in "$WORK/plate4" target/plate-bench/standard; do
  [ -d "$plate" ] || continue
  /usr/bin/time -v "$HCS" plan examples/pipelines/canonical.toml --plate "$plate" > "$WORK/plan.txt" 2> "$WORK/plan-time.txt"
  estimate=$(grep -o 'peak in memory ~[0-9.]* MiB' "$WORK/plan.txt" | head -1 | grep -o '[0-9.]*')
  # The part of the estimate that is the writer's queue at its bound (0 when the well writes no plane files).
  queue=$(grep -o '[0-9.]* MiB of it files waiting' "$WORK/plan.txt" | head -1 | grep -o '^[0-9.]*' || echo 0)
  rm -rf "$WORK/one"
  /usr/bin/time -v "$HCS" run examples/pipelines/canonical.toml --plate "$plate" --out "$WORK/one" --workers 1 \
    > /dev/null 2> "$WORK/one-time.txt"
  first=$(ls "$WORK/one/.hcs/wells/" | sort | head -1)
  python3 -c "import sys, json; e, peak, base = float(sys.argv[2]), int(sys.argv[3]) / 1024, int(sys.argv[4]) / 1024; m = peak - base
t = json.load(open(sys.argv[5]))['trace']; held = t['peak_heap_mib'] - t['heap_at_start_mib']
q, waited = float(sys.argv[6]), t.get('peak_write_behind_mib', 0.0); used = e - q + waited
print(f'{sys.argv[1]}: one well measured {m:.0f} MiB of RSS (peak RSS {peak:.0f} less {base:.0f} without images) and held {held:.0f} MiB of heap at its peak; compiler estimate {e:.0f} MiB ({q:.0f} of it the writer queue at its bound; the queue held at most {waited:.0f}): estimate / RSS {e / m:.2f}, estimate / heap held {e / held:.2f}; with the queue as used {used:.0f} MiB: / RSS {used / m:.2f}, / heap {used / held:.2f}')" \
    "$(basename "$plate")" "$estimate" "$(kib "$WORK/one-time.txt")" "$(kib "$WORK/plan-time.txt")" "$WORK/one/.hcs/wells/$first" "$queue"
done
