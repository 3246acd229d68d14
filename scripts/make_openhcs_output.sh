#!/usr/bin/env bash
# Regenerate tests/fixtures/openhcs/plate_ix_openhcs: a plate written by the peer itself
# (OpenHCS 0.8.6, its canonical CPU pipeline through its own orchestrator), so that hcs's
# reader of OpenHCS plates (hcs-core/plate/src/formats/openhcs.rs) is tested against the real
# openhcs_metadata.json and TIFFs, not against our idea of them. CI does not run the peer: the
# small fixture (2 wells, 2 x 2 sites of 96², 1 channel, 2 z) is committed.
#
# And its twins plate_ix_openhcs_zarr and plate_ix_openhcs_zarr_lz4: the same input through the
# same pipeline, OpenHCS storing its outputs in Zarr (scripts/openhcs_zarr_run.py) compressed with
# its default (numcodecs Zlib) and with its `lz4` choice (numcodecs LZ4). The script checks, with
# the zarr-python and tifffile of the peer's venv, that every plane of each Zarr twin equals the
# TIFF of the first.
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
"$peer/.venv/bin/python" scripts/openhcs_zarr_run.py "$peer" "$work/plate_ix" "$work/run-zarr-lz4" lz4 > /dev/null
out=tests/fixtures/openhcs/plate_ix_openhcs
rm -rf "$out" "${out}_zarr" "${out}_zarr_lz4"; mkdir -p "$(dirname "$out")"
cp -r "$work/run/plate_ix_openhcs" "$out"
cp -r "$work/run-zarr/plate_ix_openhcs" "${out}_zarr"
cp -r "$work/run-zarr-lz4/plate_ix_openhcs" "${out}_zarr_lz4"
"$peer/.venv/bin/python" - "$out" "${out}_zarr" "${out}_zarr_lz4" <<'PY'
import json, sys
from pathlib import Path
import numpy as np, tifffile, zarr
tiffs = Path(sys.argv[1])
for store, codec in ((Path(sys.argv[2]), "zlib"), (Path(sys.argv[3]), "lz4")):
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
              assert array.metadata.compressor.codec_id == codec, (store, array.metadata.compressor)
              for file, (_, c, z) in names.items():
                  want = tifffile.imread(tiffs / name / file)
                  assert np.array_equal(array[0, c, z], want), (name, well["path"], file)
                  planes += 1
  print(f"{store.name}: every one of the {planes} Zarr planes ({codec}) equals its TIFF twin")
PY
echo "wrote $out ($(du -sh "$out" | cut -f1)), ${out}_zarr ($(du -sh "${out}_zarr" | cut -f1)) and ${out}_zarr_lz4 ($(du -sh "${out}_zarr_lz4" | cut -f1))"
