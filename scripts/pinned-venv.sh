#!/usr/bin/env bash
# pinned-venv.sh VENV REQUIREMENTS: create VENV (a Python venv at the repository root) if it is
# missing, and install REQUIREMENTS into it unless it already holds exactly that file's pins (a
# stamp of the file's hash in VENV). Idempotent; the setup-*.sh scripts call it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$1
requirements=$2
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements.sha"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi
echo "$venv ready"
