#!/usr/bin/env bash
# Creates (idempotently) .venv-viewers/: the readers users open plates with — ome-zarr-py and
# napari-ome-zarr (with napari, headless: no Qt binding is installed) — pinned in
# scripts/requirements-viewers.txt, for scripts/check_viewers.py.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-viewers
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha"
want=$(sha256sum scripts/requirements-viewers.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-viewers.txt
  echo "$want" > "$stamp"
fi
echo "$VENV ready"
