#!/usr/bin/env bash
# TIFF read/write throughput: hcs (criterion, hcs-vfs/benches/tiff_throughput.rs) against Python
# tifffile on the same files, as MB/s and the ratio hcs / tifffile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh >/dev/null
cargo bench -q -p hcs-vfs --bench tiff_throughput -- --warm-up-time 1 --measurement-time 3 >/dev/null
py=$(.venv-py/bin/python bench/tiff_tifffile.py target/bench-tiff)
.venv-py/bin/python - "$py" <<'PY'
import json, sys
from pathlib import Path
py = json.loads(sys.argv[1])
print(f"{'operation':<22}{'hcs MB/s':>10}{'tifffile MB/s':>15}{'ratio':>8}")
for op in ["read_uncompressed", "write_uncompressed", "read_deflate", "write_deflate"]:
    est = json.loads(Path(f"target/criterion/tiff/{op}/new/estimates.json").read_text())
    secs = est["median"]["point_estimate"] / 1e9
    rust = 1024 * 1024 * 2 / secs / 1e6
    print(f"{op:<22}{rust:>10.0f}{py[op]:>15.0f}{rust / py[op]:>8.2f}")
PY
