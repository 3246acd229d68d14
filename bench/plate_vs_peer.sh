#!/usr/bin/env bash
# hcs vs the peer (OpenHCS 0.8.6, CPU only, its own canonical pipeline through its orchestrator) on
# the same plate files: the peer's test plate (tile 256, 4 wells), its standard plate (gen_data.py
# defaults: 2 wells, 3×3, 1024² u16, 2 ch, 3 z) and a scale plate of 8 wells. N alternating runs per
# plate (default 3), medians of wall time, CPU time and peak RSS, and the ratios peer / hcs.
#   bash bench/plate_vs_peer.sh [N] [PLATES...]     PLATES ⊆ test standard scale (default: all)
#   PEER_SRC=DIR: where the peer's folder is (default ../shared/peers/openhcs beside the repo)
#   NATIVE=1: also run hcs built for this machine's CPU (RUSTFLAGS="-C target-cpu=native", into
#             NATIVE_TARGET_DIR, default target/native) in the same rotation, as tool hcs-native
# hcs runs examples/pipelines/canonical.toml (the same steps: normalize + tophat → z max →
# composite → positions → restart from raw → normalize → assemble → z max of the mosaics). Checks
# that both wrote the same mosaics (same names under images/, each larger than 4 raw tiles).
# Beside the ratios: the page-cache read of the plate (the input's floor) and the time this disk
# takes to write as many bytes as hcs's output holds (the output's floor; it moves from day to day).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-3}"; shift || true
PLATES=("${@:-test standard scale}")
PLATES=(${PLATES[*]})
ROOT="$PWD"
PEER="$ROOT/target/openhcs-peer"
WORK="$ROOT/target/plate-bench"
mkdir -p "$WORK"

# The peer as the workplace ships it (setup.sh, gen_data.py, run_pipeline.py); from a clone
# elsewhere point PEER_SRC at that folder.
PEER_SRC="${PEER_SRC:-$ROOT/../shared/peers/openhcs}"
if [ ! -x "$PEER/.venv/bin/python" ]; then
  [ -f "$PEER_SRC/setup.sh" ] || { echo "the peer is not at $PEER_SRC (set PEER_SRC to ../shared/peers/openhcs)"; exit 2; }
  rm -rf "$PEER"; cp -r "$PEER_SRC" "$PEER"; chmod -R u+w "$PEER"
  (cd "$PEER" && LOCKED=1 bash setup.sh)
fi
cargo build --release -q
HCS="$ROOT/target/release/hcs"
TOOLS=(peer hcs)
if [ "${NATIVE:-0}" = 1 ]; then
  NATIVE_TARGET_DIR="${NATIVE_TARGET_DIR:-$ROOT/target/native}"
  CARGO_TARGET_DIR="$NATIVE_TARGET_DIR" RUSTFLAGS="-C target-cpu=native" cargo build --release -q --bin hcs
  HCS_NATIVE="$NATIVE_TARGET_DIR/release/hcs"
  TOOLS=(peer hcs hcs-native)
fi

gen() { # name, gen_data args...
  local name=$1; shift
  [ -d "$WORK/$name" ] || "$PEER/.venv/bin/python" "$PEER/gen_data.py" "$WORK/$name" "$@" > "$WORK/$name.gen.log" 2>&1
}
seconds() { # GNU time file → wall seconds
  python3 -c "import re,sys; t=open(sys.argv[1]).read(); e=re.search(r'Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)', t).group(1); print(sum(float(p)*60**k for k,p in enumerate(reversed(e.split(':')))))" "$1"
}
field() { grep "$2" "$1" | awk '{print $NF}'; }

echo "plate,tool,run,wall_s,cpu_s,peak_rss_mib,output_files" > "$WORK/runs.csv"
# peak_rss_mib: for hcs (one process) GNU time's maximum RSS; for the peer (a main process and
# worker processes) the peak of the summed RSS of its process tree, from its own timings.json.
for plate in "${PLATES[@]}"; do
  case $plate in
    test) gen test --tile 256 --wells A01,D02,B03,B06 ;;
    standard) gen standard ;;
    scale) gen scale --wells A01,A02,A03,A04,B01,B02,B03,B04 ;;
    *) echo "unknown plate $plate"; exit 2 ;;
  esac
  P="$WORK/$plate"
  for i in $(seq 1 "$N"); do
    # Alternate which tool goes first, so page cache and thermal state favour neither.
    order=("${TOOLS[@]}")
    if [ $((i % 2)) -eq 0 ]; then order=(); for ((k = ${#TOOLS[@]} - 1; k >= 0; k--)); do order+=("${TOOLS[k]}"); done; fi
    for tool in "${order[@]}"; do
      T="$WORK/$plate.$tool.$i.time"
      if [ "$tool" = peer ]; then
        R="$WORK/$plate.peer.run"
        (cd "$PEER" && /usr/bin/time -v -o "$T" .venv/bin/python run_pipeline.py --plate "$P" --run-dir "$R" --workers 2 > "$WORK/$plate.peer.$i.log" 2>&1)
        files=$(find "$R" -path "$R/logs" -prune -o -type f -print | wc -l)
        tree_rss=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['peak_rss_tree_sum_mb']))" "$R/timings.json")
      else
        O="$WORK/$plate.hcs.out"; rm -rf "$O"
        bin="$HCS"; [ "$tool" = hcs-native ] && bin="$HCS_NATIVE"
        /usr/bin/time -v -o "$T" "$bin" run examples/pipelines/canonical.toml --plate "$P" --out "$O" --workers 2 > "$WORK/$plate.$tool.$i.log" 2>&1
        files=$(find "$O" -type f | wc -l)
        [ "$(ls "$O/images" | wc -l)" -gt 0 ] || { echo "hcs produced no mosaics"; exit 1; }
      fi
      cpu=$(python3 -c "print($(field "$T" 'User time') + $(field "$T" 'System time'))")
      rss=$(( $(field "$T" 'Maximum resident set size') / 1024 ))
      [ "$tool" = peer ] && rss=$tree_rss
      echo "$plate,$tool,$i,$(seconds "$T"),$cpu,$rss,$files" >> "$WORK/runs.csv"
    done
  done
  # Both must have produced the same mosaics: the same file names under images/ (one per well
  # and channel, named by components), each larger than 4 raw tiles.
  peer_images=$(ls -d "$WORK/$plate.peer.run"/*_openhcs/images 2>/dev/null | head -1)
  [ -n "$peer_images" ] || { echo "$plate: the peer wrote no images/ folder"; exit 1; }
  if [ "$(ls "$peer_images")" != "$(ls "$WORK/$plate.hcs.out/images")" ]; then
    echo "$plate: the peer's and hcs's mosaics differ in name:"; diff <(ls "$peer_images") <(ls "$WORK/$plate.hcs.out/images"); exit 1
  fi
  tile=$(find "$P" -name '*.tif' -printf '%s\n' | sort -n | tail -1)
  for f in "$peer_images"/* "$WORK/$plate.hcs.out/images"/*; do
    [ "$(stat -c %s "$f")" -gt $((4 * tile)) ] || { echo "$f is no mosaic (not larger than 4 tiles)"; exit 1; }
  done
  echo "$plate: both wrote the same $(ls "$peer_images" | wc -l) mosaics"
  mb=$(du -sm "$P" | cut -f1)
  # The I/O ceiling: reading the same files from page cache.
  find "$P" -name '*.tif' -print0 | xargs -0 cat > /dev/null
  t0=$(date +%s.%N); find "$P" -name '*.tif' -print0 | xargs -0 cat > /dev/null; t1=$(date +%s.%N)
  echo "$plate,read,1,$(python3 -c "print($t1-$t0)"),0,0,$mb" >> "$WORK/runs.csv"
  # The disk floor: as many bytes as hcs's output holds, written to the same filesystem past the
  # page cache and synced (buffered + fsync where the filesystem refuses O_DIRECT). A run cannot
  # end before its outputs are on disk, so this bounds the wall time from below on a slow disk.
  out_mb=$(du -sm "$WORK/$plate.hcs.out" | cut -f1)
  F="$WORK/disk-floor.bin"
  t0=$(date +%s.%N)
  if ! dd if=/dev/zero of="$F" bs=1M count="$out_mb" oflag=direct conv=fsync status=none 2> /dev/null; then
    t0=$(date +%s.%N)
    dd if=/dev/zero of="$F" bs=1M count="$out_mb" conv=fsync status=none
    echo "$plate: this filesystem refused O_DIRECT; the disk floor is buffered writes + fsync"
  fi
  t1=$(date +%s.%N); rm -f "$F"
  echo "$plate,write,1,$(python3 -c "print($t1-$t0)"),0,0,$out_mb" >> "$WORK/runs.csv"
done

python3 - "$WORK/runs.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
plates = sorted({r["plate"] for r in rows}, key=["test", "standard", "scale"].index)
tools = [t for t in ("peer", "hcs", "hcs-native") if any(r["tool"] == t for r in rows)]
print(f"{'plate':9} {'tool':10} {'wall s':>8} {'cpu s':>8} {'RSS MiB':>8}   ratios peer/hcs")
for p in plates:
    med = {}
    for tool in tools:
        rs = [r for r in rows if r["plate"] == p and r["tool"] == tool]
        med[tool] = {k: statistics.median(float(r[k]) for r in rs) for k in ("wall_s", "cpu_s", "peak_rss_mib")}
        m = med[tool]
        print(f"{p:9} {tool:10} {m['wall_s']:8.2f} {m['cpu_s']:8.2f} {m['peak_rss_mib']:8.0f}")
    read = next(r for r in rows if r["plate"] == p and r["tool"] == "read")
    mb = float(read["output_files"])
    for tool in tools[1:]:
        ratio = {k: med["peer"][k] / med[tool][k] for k in med[tool]}
        print(f"{'':9} {'ratio':10} {ratio['wall_s']:7.1f}x {ratio['cpu_s']:7.1f}x {ratio['peak_rss_mib']:7.1f}x"
              f"   {tool} {mb / med[tool]['wall_s']:.0f} MB/s of raw input; page-cache read {mb / float(read['wall_s']):.0f} MB/s")
    write = next((r for r in rows if r["plate"] == p and r["tool"] == "write"), None)
    if write:
        out_mb, secs = float(write["output_files"]), float(write["wall_s"])
        print(f"{'':9} {'disk':10} hcs writes {out_mb:.0f} MB; this disk takes them in {secs:.2f} s "
              f"({out_mb / secs:.0f} MB/s): {secs / med['hcs']['wall_s']:.0%} of hcs's wall time")
PY
