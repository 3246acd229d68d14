#!/usr/bin/env python3
"""Compare two output trees of the same run (e.g. the CPU path's and the GPU's) TIFF by TIFF
with tifffile: prints the file count, the largest difference in 16-bit levels and how many
samples differ by more than 1; exits 1 when a file is missing or differs in shape, or when a
difference exceeds 2 levels (more than rounding).

    python3 scripts/compare_outputs.py CPU_OUT OTHER_OUT
"""
import pathlib
import sys

import numpy as np
import tifffile


def main():
    reference, other = map(pathlib.Path, sys.argv[1:3])
    worst, n, over1 = 0.0, 0, 0
    for f in sorted(reference.rglob("*.tif")):
        a = tifffile.imread(f).astype(np.float64)
        b = tifffile.imread(other / f.relative_to(reference)).astype(np.float64)
        assert a.shape == b.shape, (f, a.shape, b.shape)
        d = np.abs(a - b)
        worst = max(worst, float(d.max()))
        over1 += int((d > 1).sum())
        n += 1
    print(f"{other.name}: {n} output TIFFs, largest difference from {reference.name}'s {worst} (16-bit levels), "
          f"{over1} samples differ by more than 1")
    assert n > 0 and worst <= 2.0, "the outputs differ by more than rounding"


if __name__ == "__main__":
    main()
