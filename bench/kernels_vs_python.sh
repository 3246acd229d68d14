#!/usr/bin/env bash
# Kernel speed: hcs (criterion, hcs-kernels/benches/kernels.rs, all cores) against the reference
# Python libraries on the same 9 x 1024 x 1024 stack. Prints seconds and python_time / hcs_time.
# Pass benchmark names to run a subset, e.g. `bash bench/kernels_vs_python.sh tophat_r50_exact`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh >/dev/null
names=("$@")
filter=$(IFS='|'; echo "${names[*]:-}")
cargo bench -q -p hcs-kernels --bench kernels -- ${filter:+"($filter)\$"} >/dev/null
py=$(.venv-py/bin/python bench/kernels_python.py "${names[@]}")
.venv-py/bin/python - "$py" <<'PY'
import json, sys
from pathlib import Path
py = json.loads(sys.argv[1])
print(f"{'function':<28}{'hcs s':>9}{'python s':>10}{'ratio':>8}")
for name, secs in py.items():
    est = Path(f"target/criterion/kernels_9x1024x1024/{name}/new/estimates.json")
    rust = json.loads(est.read_text())["median"]["point_estimate"] / 1e9
    print(f"{name:<28}{rust:>9.3f}{secs:>10.3f}{secs / rust:>8.1f}")
PY
