#!/usr/bin/env bash
# Creates (idempotently) the Python venv used by reference-value generation, OME-Zarr validation
# and the benchmark scripts: .venv-py/ with pinned versions from scripts/requirements.txt.
set -euo pipefail
exec bash "$(dirname "$0")/pinned-venv.sh" .venv-py scripts/requirements.txt
