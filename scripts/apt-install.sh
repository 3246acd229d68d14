#!/usr/bin/env bash
# Installs Debian packages for the CI scripts (the callers check first that what they need is
# missing): apt-get update, then apt-get install without recommended packages, non-interactive
# (the setting passed through sudo with env), with sudo unless run as root.
#
#   bash scripts/apt-install.sh PACKAGE...
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
echo "installing $* (apt-get)"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" > /dev/null
