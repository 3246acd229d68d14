#!/usr/bin/env bash
# Peak memory of `hcs run` (the canonical pipeline) on a 4-well and a 24-well synthetic plate,
# measured with /usr/bin/time -v: the executor keeps only `workers` wells in flight, so the
# 24-well plate should need about the memory of the 4-well one.
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
