#!/usr/bin/env bash
# Stitching accuracy of hcs and of the peer's Ashlar port (OpenHCS 0.8.6,
# ashlar_compute_tile_positions_cpu with its defaults) on the same `hcs synth` plates: 3x3 and 5x5
# grids, 10 % and 20 % overlap, +-5 px sub-pixel jitter, noise, dense and sparse cells.
# Prints mean / max position error against the ground truth (common offset removed) and the time.
# The peer is set up from ../shared/peers/openhcs into target/openhcs-peer on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh >/dev/null
peer_dir=target/openhcs-peer
if [ ! -x "$peer_dir/.venv/bin/python" ]; then
  rm -rf "$peer_dir" && cp -r ../shared/peers/openhcs "$peer_dir"
  LOCKED=1 bash "$peer_dir/setup.sh" >/dev/null
fi
cargo build -q --release -p hcs --bin hcs
cargo build -q --release -p hcs-kernels --example stitch_positions
out=target/stitch-compare
mkdir -p "$out"
runs=()
for case in "3 0.01" "1 0.1"; do
  read -r density alpha <<<"$case"
  for grid in "3 3" "5 5"; do
    read -r rows cols <<<"$grid"
    for overlap in 0.1 0.2; do
      name="density${density}_${rows}x${cols}_overlap${overlap}"
      plate="$out/$name"
      rm -rf "$plate"
      target/release/hcs synth --out "$plate" --wells B03 --grid "$rows" "$cols" --tile 320 --overlap "$overlap" \
        --jitter 5 --z 1 --channels 1 --seed 11 --cell-density "$density" --noise 100 >/dev/null
      s=$(date +%s.%N)
      target/release/examples/stitch_positions "$plate" "$rows" "$cols" "$overlap" "$alpha" >"$plate/hcs.json"
      m=$(date +%s.%N)
      "$peer_dir/.venv/bin/python" bench/stitch_peer.py "$plate" "$rows" "$cols" "$overlap" >"$plate/peer.json"
      e=$(date +%s.%N)
      echo "$(echo "$m - $s" | bc) $(echo "$e - $m" | bc)" >"$plate/times.txt"
      runs+=("$plate")
    done
  done
done
.venv-py/bin/python - "${runs[@]}" <<'PY'
import json, sys
from pathlib import Path

def errors(found, truth):
    k = len(found)
    fm = [sum(p[i] for p in found) / k for i in (0, 1)]
    tm = [sum(p[i] for p in truth) / k for i in (0, 1)]
    e = [((f[0] - fm[0] - t[0] + tm[0]) ** 2 + (f[1] - fm[1] - t[1] + tm[1]) ** 2) ** 0.5 for f, t in zip(found, truth)]
    return sum(e) / k, max(e)

print(f"{'plate':<30}{'hcs mean':>9}{'max':>7}{'s':>7}{'peer mean':>11}{'max':>7}{'s':>7}")
for plate in map(Path, sys.argv[1:]):
    truth = json.loads((plate / "hcs_ground_truth.json").read_text())["positions"][0][1]
    truth = [(t["x"], t["y"]) for t in sorted(truth, key=lambda t: t["site"])]
    hcs, peer = json.loads((plate / "hcs.json").read_text()), json.loads((plate / "peer.json").read_text())
    th, tp = map(float, (plate / "times.txt").read_text().split())
    (hm, hx), (pm, px) = errors(hcs["B03"], truth), errors(peer["B03"], truth)
    print(f"{plate.name:<30}{hm:>9.2f}{hx:>7.2f}{th:>7.2f}{pm:>11.2f}{px:>7.2f}{tp:>7.2f}")
PY
