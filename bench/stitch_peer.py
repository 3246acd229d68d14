#!/usr/bin/env python3
"""The peer's Ashlar port (OpenHCS 0.8.6 ashlar_compute_tile_positions_cpu, its defaults) on an
ImageXpress plate written by `hcs synth`. Usage: stitch_peer.py PLATE ROWS COLS OVERLAP [CHANNEL Z]
Prints {"well": [[x, y], ...]} in site order, like hcs-kernels/examples/stitch_positions.rs."""
import json
import logging
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OPENHCS_CPU_ONLY", "true")
os.environ.setdefault("OPENHCS_HEADLESS", "true")
logging.disable(logging.WARNING)
import numpy as np
import tifffile
from openhcs.processing.backends.pos_gen.ashlar_main_cpu import ashlar_compute_tile_positions_cpu

plate, rows, cols, overlap = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
channel, z = (int(sys.argv[5]), int(sys.argv[6])) if len(sys.argv) > 6 else (1, 1)
folder = plate / "TimePoint_1" / f"ZStep_{z}"
if not folder.is_dir():  # single-plane plates keep their images directly under TimePoint_1
    folder = plate / "TimePoint_1"
wells = sorted({m.group(1) for f in folder.iterdir() if (m := re.match(r"([A-P]\d\d)_s\d+_w\d+\.tif$", f.name))})
out = {}
for well in wells:
    stack = np.stack([tifffile.imread(folder / f"{well}_s{s}_w{channel}.tif") for s in range(1, rows * cols + 1)])
    result = ashlar_compute_tile_positions_cpu(stack.astype(np.float32), (rows, cols), overlap_ratio=overlap)
    positions = result[1] if isinstance(result, tuple) else result
    out[well] = [[float(x), float(y)] for x, y in np.asarray(positions)]
print(json.dumps(out))
