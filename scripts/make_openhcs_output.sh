#!/usr/bin/env bash
# Regenerate tests/fixtures/openhcs/plate_ix_openhcs: a plate written by the peer itself
# (OpenHCS 0.8.6, its canonical CPU pipeline through its own orchestrator), so that hcs's
# reader of OpenHCS plates (hcs-core/plate/src/formats/openhcs.rs) is tested against the real
# openhcs_metadata.json and TIFFs, not against our idea of them. CI does not run the peer: the
# small fixture (2 wells, 2 x 2 sites of 96², 1 channel, 2 z) is committed.
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
out=tests/fixtures/openhcs/plate_ix_openhcs
rm -rf "$out"; mkdir -p "$(dirname "$out")"
cp -r "$work/run/plate_ix_openhcs" "$out"
echo "wrote $out ($(du -sh "$out" | cut -f1))"
