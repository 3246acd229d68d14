#!/usr/bin/env python3
"""The operations of hcs-kernels/benches/kernels.rs in scikit-image / scipy / numpy, on the same
9 x 1024 x 1024 data (same formula). Prints JSON {name: median seconds}."""
import json
import sys
import time

from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
from skimage.feature import blob_log
from skimage.exposure import equalize_hist
from skimage.filters import unsharp_mask
from skimage.morphology import disk, white_tophat
from skimage.transform import downscale_local_mean

p, y, x = np.meshgrid(np.arange(9, dtype=np.uint64), np.arange(1024, dtype=np.uint64), np.arange(1024, dtype=np.uint64), indexing="ij")
h = ((p * np.uint64(1_000_003) + y * np.uint64(1031) + x) * np.uint64(2_654_435_761)) % np.uint64(4096)
spot = np.where(((x // 29 + y // 31 + p) % 11) == 0, 8000.0, 0.0)
STACK = (600.0 + spot + h.astype(np.float64)).astype(np.float32)
del p, y, x, h, spot


def timed(fn, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def pnorm(s, lo=1.0, hi=99.0):
    a, b = np.percentile(s, [lo, hi])
    return np.clip((s - a) / (b - a) * 65535.0, 0, 65535)


def tophat_ds(s, r, f):
    out = np.empty_like(s)
    for i, plane in enumerate(s):
        small = downscale_local_mean(plane, (f, f))
        bg = ndi.grey_opening(small, footprint=disk(max(1, round(r / f))), mode="reflect")
        up = np.repeat(np.repeat(bg, f, axis=0), f, axis=1)[: plane.shape[0], : plane.shape[1]]
        out[i] = np.maximum(plane - up, 0)
    return out


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from make_references import basic_reference, detection_image  # noqa: E402


def count_blobs(plane):
    """count_cells_single_channel's blob_log path: preprocess, scale, blob_log."""
    return blob_log(detection_image(plane), min_sigma=1.0, max_sigma=10.0, num_sigma=10, threshold=0.1, overlap=0.5)


OPS = {
    "max_projection": (lambda: STACK.max(axis=0, keepdims=True), 5),
    "mean_projection": (lambda: STACK.mean(axis=0, keepdims=True), 5),
    "create_composite": (lambda: np.average(STACK, axis=0, weights=np.ones(9))[None], 5),
    "stack_percentile_normalize": (lambda: pnorm(STACK), 3),
    "percentile_normalize": (lambda: np.stack([pnorm(pl) for pl in STACK]), 3),
    "gaussian_filter": (lambda: np.stack([ndi.gaussian_filter(pl, 2.0, mode="reflect") for pl in STACK]), 3),
    "sharpen": (lambda: np.stack([np.clip(unsharp_mask(pl, radius=1.0, amount=1.0, preserve_range=True), 0, 65535) for pl in STACK]), 3),
    "stack_equalize_histogram": (lambda: equalize_hist(STACK, nbins=65536) * 65535.0, 3),
    "spatial_bin_2d": (lambda: STACK.reshape(9, 512, 2, 512, 2).mean(axis=(2, 4)), 3),
    "tophat_r50_ds4": (lambda: tophat_ds(STACK, 50, 4), 1),
    # One plane of the exact top-hat, scaled to 9 planes: scikit-image needs minutes per stack.
    "tophat_r50_exact": (lambda: white_tophat(STACK[0], disk(50)), 1),
    "crop": (lambda: STACK[0:9, 100:900, 100:900].copy(), 5),
    "spatial_bin_3d": (lambda: STACK[:8].reshape(4, 2, 512, 2, 512, 2).mean(axis=(1, 3, 5)), 3),
    "best_focus_projection": (lambda: STACK[int(np.argmax([ndi.laplace(p.astype(np.float64)).var() for p in STACK]))][None].copy(), 3),
    # The same definition in numpy (LAPACK SVD), scripts/make_references.py.
    "basic_flatfield_correction": (lambda: basic_reference(STACK, 64, "divide"), 1),
    # One plane, scaled to 9 planes.
    "count_cells_blob_log": (lambda: count_blobs(STACK[0]), 1),
}
scale = {"tophat_r50_exact": 9.0, "count_cells_blob_log": 9.0}

if __name__ == "__main__":
    names = [n for n in (sys.argv[1:] or list(OPS)) if n in OPS]
    print(json.dumps({n: timed(*OPS[n]) * scale.get(n, 1.0) for n in names}))
