#!/usr/bin/env bash
# Installs, in one apt-get run, the Debian packages the later CI stages need and this machine
# lacks: qemu-user (scripts/test-portable-loops.sh), Slurm and munge (scripts/slurm-local.sh),
# chromium (scripts/install-browser.sh). Those scripts check for and install the same packages
# themselves; .ci/run calls this first, in the background beside the first builds, so the
# downloads overlap compiling instead of waiting in three stages. Safe to run again.
#
#   bash scripts/ci-system-packages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v qemu-x86_64 > /dev/null || [ "$(uname -m)" != x86_64 ] || missing+=(qemu-user)
for cmd in slurmctld slurmd sbatch munged; do
  command -v "$cmd" > /dev/null || { missing+=(slurmctld slurmd slurm-client munge); break; }
done
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "system packages: all there"
else
  bash scripts/apt-install.sh "${missing[@]}"
fi
