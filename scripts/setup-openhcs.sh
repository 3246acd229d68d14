#!/usr/bin/env bash
# Creates (idempotently) .venv-openhcs/: OpenHCS 0.8.6, the peer, CPU only, pinned in
# scripts/requirements-openhcs.txt, for scripts/check_openhcs_reads.py (OpenHCS opening the
# plates hcs writes). Needs Python 3.11 to 3.14.
set -euo pipefail
exec bash "$(dirname "$0")/pinned-venv.sh" .venv-openhcs scripts/requirements-openhcs.txt
