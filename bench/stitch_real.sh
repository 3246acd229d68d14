#!/usr/bin/env bash
# Stitching on plates cut from real images (tests/fixtures/real: tissue and a deep-sky field),
# at 5, 10, 15, 20 and 30 % overlap, ±4 px sub-pixel stage error, vignetting and noise — run
# end to end with the shipped examples/pipelines/canonical.toml, unchanged, by this checkout and
# by the previous release (PREV, a git revision; default the commit before overlap estimation),
# built from a git worktree. Prints mean / max position error against the ground truth (common
# offset removed) and the overlap each used.
#   bash bench/stitch_real.sh            # PREV=16cf1f1 TILE=384
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
prev=${PREV:-16cf1f1}
tile=${TILE:-384}
bash scripts/setup-python.sh >/dev/null
out=target/stitch-real
mkdir -p "$out"
# The previous release: its own worktree, built into the shared target dir (dependencies are
# reused), its binary copied aside before this checkout's is built.
if [ ! -x "$out/prev-hcs" ] || [ "$(cat "$out/prev-rev" 2>/dev/null)" != "$prev" ]; then
  rm -rf "$out/prev-src"
  git worktree prune
  git worktree add -q --detach "$out/prev-src" "$prev"
  (cd "$out/prev-src" && CARGO_TARGET_DIR="$root/target" cargo build -q --release -p hcs --bin hcs)
  cp target/release/hcs "$out/prev-hcs"
  echo "$prev" >"$out/prev-rev"
  git worktree remove --force "$out/prev-src"
fi
cargo build -q --release -p hcs --bin hcs
plates=()
for spec in "ihc 3" "hubble 1.5"; do
  read -r image scale <<<"$spec"
  for overlap in 0.05 0.1 0.15 0.2 0.3; do
    plate="$out/${image}_$overlap"
    rm -rf "$plate"
    target/release/hcs synth -q --out "$plate/plate" --source-image "tests/fixtures/real/$image.tif" \
      --source-scale "$scale" --tile "$tile" --overlap "$overlap" --jitter 4 --noise 150 --wells B03 --seed 5
    for who in now prev; do
      bin=target/release/hcs
      [ "$who" = prev ] && bin="$out/prev-hcs"
      s=$(date +%s.%N)
      "$bin" run -q examples/pipelines/canonical.toml --plate "$plate/plate" --out "$plate/$who" || true
      echo "$(echo "$(date +%s.%N) - $s" | bc)" >"$plate/$who.seconds"
    done
    plates+=("$plate")
  done
done
.venv-py/bin/python - "$prev" "${plates[@]}" <<'PY'
import csv, json, sys
from pathlib import Path

def errors(found, truth):
    k = len(found)
    fm = [sum(p[i] for p in found) / k for i in (0, 1)]
    tm = [sum(p[i] for p in truth) / k for i in (0, 1)]
    e = [((f[0] - fm[0] - t[0] + tm[0]) ** 2 + (f[1] - fm[1] - t[1] + tm[1]) ** 2) ** 0.5 for f, t in zip(found, truth)]
    return sum(e) / k, max(e)

def run(plate, who):
    res = plate / who / "results"
    pos = sorted(csv.DictReader(open(res / "B03_positions.csv")), key=lambda r: int(r["site"]))
    edges = list(csv.DictReader(open(res / "B03_positions_edges.csv")))
    ov = res / "B03_positions_overlap.csv"
    ov = {r["axis"]: float(r["overlap"]) for r in csv.DictReader(open(ov))} if ov.exists() else None
    acc = sum(e["accepted"] == "true" for e in edges)
    secs = float((plate / f"{who}.seconds").read_text())
    return [(float(r["x"]), float(r["y"])) for r in pos], f"{acc}/{len(edges)}", ov, secs

prev = sys.argv[1]
print(f"{'plate':<14}{'overlap':>8} | {'now mean':>9}{'max':>7}{'edges':>7}{'est. overlap':>14}{'s':>6} | "
      f"{'prev mean':>10}{'max':>7}{'edges':>7}{'s':>6}   (prev = {prev})")
worst = [0.0, 0.0]
for plate in map(Path, sys.argv[2:]):
    truth = json.loads((plate / "plate" / "hcs_ground_truth.json").read_text())["positions"][0][1]
    truth = [(t["x"], t["y"]) for t in sorted(truth, key=lambda t: t["site"])]
    image, overlap = plate.name.rsplit("_", 1)
    now, prev_ = run(plate, "now"), run(plate, "prev")
    (nm, nx), (pm, px) = errors(now[0], truth), errors(prev_[0], truth)
    worst = [max(worst[0], nm), max(worst[1], nx)]
    est = f"{now[2]['x']:.3f}x{now[2]['y']:.3f}" if now[2] else "-"
    print(f"{image:<14}{overlap:>8} | {nm:>9.3f}{nx:>7.3f}{now[1]:>7}{est:>14}{now[3]:>6.2f} | "
          f"{pm:>10.3f}{px:>7.3f}{prev_[1]:>7}{prev_[3]:>6.2f}")
print(f"worst now: mean {worst[0]:.3f} px, max {worst[1]:.3f} px (goal 0.1 / 0.3)")
PY
