#!/usr/bin/env bash
# Creates (idempotently) .venv-viewers/: the readers users open plates with — ome-zarr-py and
# napari-ome-zarr (with napari, headless: no Qt binding is installed) — pinned in
# scripts/requirements-viewers.txt, for scripts/check_viewers.py.
set -euo pipefail
exec bash "$(dirname "$0")/pinned-venv.sh" .venv-viewers scripts/requirements-viewers.txt
