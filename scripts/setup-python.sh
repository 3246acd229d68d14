#!/usr/bin/env bash
# Creates (idempotently) the Python venv used by reference-value generation, OME-Zarr validation
# and the benchmark scripts: .venv-py/ with pinned versions from scripts/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-py
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha"
want=$(sha256sum scripts/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements.txt
  echo "$want" > "$stamp"
fi
echo "$VENV ready"
