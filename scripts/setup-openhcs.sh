#!/usr/bin/env bash
# Creates (idempotently) .venv-openhcs/: OpenHCS 0.8.6, the peer, CPU only, pinned in
# scripts/requirements-openhcs.txt, for scripts/check_openhcs_reads.py (OpenHCS opening the
# plates hcs writes). Needs Python 3.11 to 3.14.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-openhcs
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha"
want=$(sha256sum scripts/requirements-openhcs.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-openhcs.txt
  echo "$want" > "$stamp"
fi
echo "$VENV ready"
