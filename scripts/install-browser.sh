#!/usr/bin/env bash
# Installs what the headless-browser check of the HTML report (tests/browser/report.test.mjs) needs,
# and nothing that is already there: Debian's `chromium` package via apt-get when /usr/bin/chromium
# is missing (with sudo unless run as root), then playwright-core from tests/browser/package-lock.json
# (`npm ci`) when tests/browser/node_modules/playwright-core is missing. Safe to run again.
#
#   bash scripts/install-browser.sh
#   node tests/browser/report.test.mjs <output_root>/results/report.html [--screenshot out.png]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  bash scripts/apt-install.sh chromium
else
  echo "chromium: /usr/bin/chromium is there"
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "installing playwright-core (npm ci)"
  npm ci --prefix tests/browser --no-audit --no-fund
else
  echo "playwright-core: tests/browser/node_modules/playwright-core is there"
fi
