#!/usr/bin/env bash
# Regenerate tests/fixtures/openhcs/plate_ix_openhcs: a plate written by the peer itself
# (OpenHCS 0.8.6, its canonical CPU pipeline through its own orchestrator), so that hcs's
# reader of OpenHCS plates (hcs-core/plate/src/formats/openhcs.rs) is tested against the real
# openhcs_metadata.json and TIFFs, not against our idea of them. CI does not run the peer: the
# small fixture (2 wells, 2 x 2 sites of 96², 1 channel, 2 z) is committed.
#
# And its Zarr twins: the same input through the same pipeline, OpenHCS storing its outputs in
# Zarr (scripts/openhcs_zarr_run.py) with each compressor it offers: plate_ix_openhcs_zarr with
# its default (numcodecs Zlib), plate_ix_openhcs_zarr_<name> with its `lz4`, `zstd`, `blosc` and
# `none` choices. The script checks, with the zarr-python and tifffile of the peer's venv, that
# every plane of each Zarr twin equals the TIFF of the first and that each twin is stored with
# the compressor it is named for.
#
#   PEER_SRC=../shared/peers/openhcs bash scripts/make_openhcs_output.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PEER_SRC=${PEER_SRC:-../shared/peers/openhcs}
peer=target/openhcs-peer
if [ ! -x "$peer/.venv/bin/python" ]; then
  rm -rf "$peer"; mkdir -p target
  cp -r "$PEER_SRC" "$peer"; chmod -R u+w "$peer"
  (cd "$peer" && LOCKED=1 bash setup.sh)
fi
work=$(mktemp -d /tmp/hcs-openhcs-fixture.XXXX)
trap 'rm -rf "$work"' EXIT
"$peer/.venv/bin/python" "$peer/gen_data.py" "$work/plate_ix" --tile 96 --grid 2 2 --wavelengths 1 --z 2 \
  --wells A01,B02 --cells 30 > /dev/null
"$peer/.venv/bin/python" "$peer/run_pipeline.py" --plate "$work/plate_ix" --run-dir "$work/run" > /dev/null
"$peer/.venv/bin/python" scripts/openhcs_zarr_run.py "$peer" "$work/plate_ix" "$work/run-zarr" > /dev/null
compressors="lz4 zstd blosc none"
for c in $compressors; do
  "$peer/.venv/bin/python" scripts/openhcs_zarr_run.py "$peer" "$work/plate_ix" "$work/run-zarr-$c" "$c" > /dev/null
done
out=tests/fixtures/openhcs/plate_ix_openhcs
rm -rf "$out" "${out}_zarr"; mkdir -p "$(dirname "$out")"
cp -r "$work/run/plate_ix_openhcs" "$out"
cp -r "$work/run-zarr/plate_ix_openhcs" "${out}_zarr"
twins=("${out}_zarr:zlib")
for c in $compressors; do
  rm -rf "${out}_zarr_$c"
  cp -r "$work/run-zarr-$c/plate_ix_openhcs" "${out}_zarr_$c"
  twins+=("${out}_zarr_$c:$c")
done
"$peer/.venv/bin/python" - "$out" "${twins[@]}" <<'PY'
import json, sys
from pathlib import Path
import numpy as np, tifffile, zarr
tiffs = Path(sys.argv[1])
for store, codec in (arg.rsplit(":", 1) for arg in sys.argv[2:]):
  store = Path(store)
  meta = json.loads((store / "openhcs_metadata.json").read_text())["subdirectories"]
  planes = 0
  for name, sub in meta.items():
      if not sub.get("image_files"):
          continue
      assert sub["available_backends"] == {"zarr": True}, (name, sub["available_backends"])
      root = zarr.open(str(store / name), mode="r")
      for well in root.attrs["plate"]["wells"]:
          for i, image in enumerate(root[well["path"]].attrs["well"]["images"]):
              array = root[f'{well["path"]}/{image["path"]}/0']
              names = array.attrs["polystore_filename_map"]
              stored = array.metadata.compressor
              assert (stored is None if codec == "none" else stored.codec_id == codec), (store, stored)
              for file, (_, c, z) in names.items():
                  want = tifffile.imread(tiffs / name / file)
                  assert np.array_equal(array[0, c, z], want), (name, well["path"], file)
                  planes += 1
  print(f"{store.name}: every one of the {planes} Zarr planes ({codec}) equals its TIFF twin")
PY
du -sh "$out" "${out}"_zarr*
