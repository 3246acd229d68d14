#!/usr/bin/env bash
# Kernel speed: hcs (criterion, hcs-kernels/benches/kernels.rs, all cores) against the reference
# Python libraries on the same 9 x 1024 x 1024 stack, and with PEER=1 also against the peer's own
# numpy kernels (OpenHCS 0.8.6, set up from ../shared/peers/openhcs into target/openhcs-peer).
# Prints seconds and the ratios python_time / hcs_time (and peer_time / hcs_time).
# Pass benchmark names to run a subset, e.g. `bash bench/kernels_vs_python.sh tophat_r50_exact`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh >/dev/null
names=("$@")
filter=$(IFS='|'; echo "${names[*]:-}")
cargo bench -q -p hcs-kernels --bench kernels -- ${filter:+"($filter)\$"} >/dev/null
py=$(.venv-py/bin/python bench/kernels_python.py "${names[@]}")
peer='{}'
if [ "${PEER:-0}" = 1 ]; then
  peer_dir=target/openhcs-peer
  if [ ! -x "$peer_dir/.venv/bin/python" ]; then
    rm -rf "$peer_dir" && cp -r ../shared/peers/openhcs "$peer_dir"
    LOCKED=1 bash "$peer_dir/setup.sh" >/dev/null
  fi
  peer=$("$peer_dir/.venv/bin/python" bench/kernels_peer.py "${names[@]}")
fi
.venv-py/bin/python - "$py" "$peer" "${names[@]}" <<'PY'
import json, sys
from pathlib import Path
py, peer = json.loads(sys.argv[1]), json.loads(sys.argv[2])
root = Path("target/criterion/kernels_9x1024x1024")
names = sys.argv[3:] or sorted(d.name for d in root.iterdir() if (d / "new").is_dir())
print(f"{'function':<30}{'hcs s':>9}{'python s':>10}{'ratio':>8}{'peer s':>9}{'ratio':>8}")
for name in names:
    est = root / name / "new" / "estimates.json"
    rust = json.loads(est.read_text())["median"]["point_estimate"] / 1e9
    cols = [f"{py[name]:>10.3f}{py[name] / rust:>8.1f}" if name in py else f"{'-':>10}{'-':>8}"]
    cols.append(f"{peer[name]:>9.3f}{peer[name] / rust:>8.1f}" if name in peer else "")
    print(f"{name:<30}{rust:>9.3f}" + "".join(cols))
PY
