#!/usr/bin/env bash
# Installs Debian packages for the CI scripts (the callers check first that what they need is
# missing): apt-get update, then apt-get install without recommended packages, non-interactive,
# with sudo unless run as root.
#
#   bash scripts/apt-install.sh PACKAGE...
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
echo "installing $* (apt-get)"
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" > /dev/null
