#!/usr/bin/env python3
"""Time tifffile on the files the Rust TIFF bench wrote (target/bench-tiff/*.tif).

Prints JSON: {"read_uncompressed": MB/s, "write_uncompressed": MB/s, ...}. Writes are atomic
like hcs's (temp file + fsync + rename) so both sides do the same work.
"""
import json
import os
import sys
import time
from pathlib import Path

import tifffile

DIR = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench-tiff")


def best_rate(fn, nbytes, seconds=2.0):
    fn()  # warm up
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return nbytes / times[len(times) // 2] / 1e6


def atomic_write(path, data, compression):
    tmp = path.with_name(f".{path.name}.tmp")
    tifffile.imwrite(tmp, data, compression=compression)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


out = {}
for name, compression in [("uncompressed", None), ("deflate", "zlib")]:
    src = DIR / f"{name}.tif"
    data = tifffile.imread(src)
    nbytes = data.nbytes
    out[f"read_{name}"] = best_rate(lambda: tifffile.imread(src), nbytes)
    dst = DIR / f"py_out_{name}.tif"
    out[f"write_{name}"] = best_rate(lambda: atomic_write(dst, data, compression), nbytes)
print(json.dumps(out))
