#!/usr/bin/env python3
"""Reference outputs for hcs-kernels, from scikit-image / scipy / numpy (versions pinned in
scripts/requirements.txt; set up with scripts/setup-python.sh).

Writes small .npy fixtures to hcs-kernels/tests/fixtures/: the inputs and, per function, the
reference output. hcs-kernels/tests/references.rs compares the Rust kernels against them within
the tolerances stated there. Regenerate with:

    bash scripts/setup-python.sh && .venv-py/bin/python scripts/make_references.py
"""

import json
from pathlib import Path

import numpy as np
import scipy
import scipy.ndimage as ndi
import skimage
from skimage.exposure import equalize_hist
from skimage.filters import unsharp_mask
from skimage.feature import blob_log, peak_local_max
from skimage.filters import threshold_li, threshold_otsu
from skimage.measure import label, regionprops
from skimage.morphology import disk, white_tophat
from skimage.segmentation import watershed

OUT = Path(__file__).resolve().parent.parent / "hcs-kernels" / "tests" / "fixtures"


def synthetic_stack(seed=7, planes=3, h=64, w=80):
    """u16-valued float32 stack: background, blobs of several sizes, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((planes, h, w), np.float64)
    for p in range(planes):
        img = 600.0 + 150.0 * np.sin(xx / 17.0 + p) * np.cos(yy / 23.0)
        for _ in range(25):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            s = rng.uniform(1.0, 4.0)
            img += rng.uniform(2000, 20000) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        img += rng.normal(0, 80, size=img.shape)
        out[p] = img
    return np.clip(np.round(out), 0, 65535).astype(np.float32)


def cell_stack(seed=11, planes=2, h=128, w=128):
    """u16-valued float32 slices of round cells (radius 3-7 px, some touching, some on the border)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((planes, h, w), np.float64)
    for p in range(planes):
        img = np.full((h, w), 300.0)
        for _ in range(30):
            cy, cx, r = rng.uniform(-4, h + 4), rng.uniform(-4, w + 4), rng.uniform(3.0, 7.0)
            img += rng.uniform(1500, 5000) / (1.0 + np.exp(((yy - cy) ** 2 + (xx - cx) ** 2) ** 0.5 - r))
        img += rng.normal(0, 60, size=img.shape)
        out[p] = img
    return np.clip(np.round(out), 0, 65535).astype(np.float32)


def detection_image(plane, gaussian_sigma=1.0, median_disk=1):
    """count_cells_single_channel's preprocessing: Gaussian, median over a disk, scale to [0, 1]."""
    img = ndi.gaussian_filter(plane.astype(np.float64), gaussian_sigma, mode="reflect", truncate=4.0)
    img = ndi.median_filter(img, footprint=disk(median_disk), mode="reflect")
    return (img - img.min()) / (img.max() - img.min())


def kept_regions(labels, min_area=10, max_area=1000):
    """Regions within the area range that do not touch the border (the kernel's filters)."""
    h, w = labels.shape
    kept = 0
    for r in regionprops(labels):
        y0, x0, y1, x1 = r.bbox
        if min_area <= r.area <= max_area and not (y0 == 0 or x0 == 0 or y1 == h or x1 == w):
            kept += 1
    return kept


def cells(save):
    """Reference cell counts: blob_log blobs, Otsu / Li thresholds, the exact distance transform,
    threshold and watershed counts, per slice, on count_cells_single_channel's defaults."""
    x = cell_stack()
    save("cells_input", x)
    summary = []
    for i, plane in enumerate(x):
        img = detection_image(plane)
        blobs = blob_log(img, min_sigma=1.0, max_sigma=10.0, num_sigma=10, threshold=0.1, overlap=0.5)
        save(f"cells_blobs_{i}", blobs[None])  # rows: y, x, sigma
        h, w = img.shape
        kept_blobs = 0
        for y, xx, s in blobs:
            r = s * np.sqrt(2)
            if 10 <= 2 * np.pi * s * s <= 1000 and not (y < r or xx < r or h - 1 - y < r or w - 1 - xx < r):
                kept_blobs += 1
        otsu, li = threshold_otsu(img), threshold_li(img)
        binary = img > otsu
        dist = ndi.distance_transform_edt(binary)
        save(f"cells_edt_{i}", dist[None])
        comps = label(binary, connectivity=2)
        peaks = peak_local_max(dist, min_distance=5, footprint=np.ones((3, 3)), labels=comps, exclude_border=False)
        markers = np.zeros(dist.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        ws = watershed(-dist, markers, mask=binary)
        summary.append({
            "blobs": int(len(blobs)), "blob_cells": kept_blobs, "otsu": float(otsu), "li": float(li),
            "threshold_cells": kept_regions(comps), "watershed_seeds": int(len(peaks)),
            "watershed_cells": kept_regions(ws),
        })
    (OUT / "cells.json").write_text(json.dumps(summary, indent=2) + "\n")


def rpca(D, lambda_scale=1.0, max_rank=3, max_iters=500, tol=1e-6):
    """Robust PCA by inexact ALM (Lin, Chen & Ma 2010) with numpy's SVD, rank capped."""
    n, p = D.shape
    lam = lambda_scale / np.sqrt(max(n, p))
    norm_fro, norm_two = np.linalg.norm(D, "fro"), np.linalg.norm(D, 2)
    Y = D / max(norm_two, np.abs(D).max() / lam)
    mu, S = 1.25 / norm_two, np.zeros_like(D)
    mu_max = mu * 1e7
    for _ in range(max_iters):
        U, sv, Vt = np.linalg.svd(D - S + Y / mu, full_matrices=False)
        sv = np.maximum(sv - 1.0 / mu, 0.0)[:max_rank]
        L = (U[:, :max_rank] * sv) @ Vt[:max_rank]
        R = D - L + Y / mu
        S = np.sign(R) * np.maximum(np.abs(R) - lam / mu, 0.0)
        Z = D - L - S
        Y = Y + mu * Z
        mu = min(mu * 1.5, mu_max)
        if np.linalg.norm(Z, "fro") / norm_fro < tol:
            break
    return L


def basic_reference(x, working_size, mode):
    """basic_flatfield_correction's definition: block means, RPCA, B = mean of L, F = B / mean(B)
    floored at 0.05 and bilinearly upsampled (block centres), then divide or subtract."""
    n, h, w = x.shape
    f = max(1, -(-max(h, w) // working_size))
    hs, ws = -(-h // f), -(-w // f)
    small = np.zeros((n, hs, ws))
    counts = np.zeros((hs, ws))
    np.add.at(counts, (np.arange(h)[:, None] // f, np.arange(w)[None, :] // f), 1.0)
    for i in range(n):
        np.add.at(small[i], (np.arange(h)[:, None] // f, np.arange(w)[None, :] // f), x[i].astype(np.float64))
    small /= counts
    B = rpca(small.reshape(n, -1)).mean(axis=0).reshape(hs, ws)
    sy = np.clip((np.arange(h) + 0.5) / f - 0.5, 0, hs - 1)
    sx = np.clip((np.arange(w) + 0.5) / f - 0.5, 0, ws - 1)
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    y1, x1 = np.minimum(y0 + 1, hs - 1), np.minimum(x0 + 1, ws - 1)
    fy, fx = (sy - y0)[:, None], (sx - x0)[None, :]
    top = B[y0][:, x0] * (1 - fx) + B[y0][:, x1] * fx
    bottom = B[y1][:, x0] * (1 - fx) + B[y1][:, x1] * fx
    F = np.maximum((top * (1 - fy) + bottom * fy) / B.mean(), 0.05)
    if mode == "divide":
        return x / F
    return x - (F * B.mean() - B.mean())


def flatfield(save):
    """A stack sharing a known vignetting (1 - 0.4 r^2), and the reference corrections."""
    rng = np.random.default_rng(5)
    n, h, w = 12, 96, 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = ((yy - h / 2) / (h / 2)) ** 2 / 2 + ((xx - w / 2) / (w / 2)) ** 2 / 2
    truth = 1.0 - 0.4 * r2
    x = np.empty((n, h, w))
    for i in range(n):
        img = np.full((h, w), 1000.0)
        for _ in range(12):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3.0, 6.0)
            img += rng.uniform(2000, 6000) / (1.0 + np.exp(np.hypot(yy - cy, xx - cx) - r))
        x[i] = img * truth + rng.normal(0, 20, size=img.shape)
    x = np.clip(np.round(x), 0, 65535).astype(np.float32)
    save("flatfield_input", x)
    save("flatfield_truth", truth[None])
    save("flatfield_divide_128", basic_reference(x, 128, "divide"))
    save("flatfield_divide_48", basic_reference(x, 48, "divide"))
    save("flatfield_subtract_48", basic_reference(x, 48, "subtract"))


def quality(save):
    """Quality measures of raw planes (hcs-exec's qc::measure), from scikit-image's camera and coins
    photographs as 16-bit planes (x 257, so the camera's 255s are saturated): focus = variance of
    scipy.ndimage.laplace over the interior pixels; saturated fraction = pixels at 65535;
    background = the 10th-percentile order statistic (index n // 10 of the sorted samples) of every
    ceil(n / 65536)-th pixel in row-major order."""
    from skimage import data

    planes = [data.camera()[100:400, 50:350], data.coins()[:300, :300]]
    x = np.stack([p.astype(np.float64) * 257.0 for p in planes])
    save("qc_input", x)
    rows = []
    for p in x:
        lap = ndi.laplace(p)[1:-1, 1:-1]
        step = -(-p.size // 65536)
        sample = np.sort(p.ravel()[::step])
        rows.append({
            "focus": float(lap.var()),
            "saturated_fraction": float((p >= 65535.0).mean()),
            "background": float(sample[sample.size // 10]),
        })
    (OUT / "qc.json").write_text(json.dumps(rows, indent=2) + "\n")


def save(name, arr):
    np.save(OUT / f"{name}.npy", np.ascontiguousarray(arr, dtype=np.float32))


def per_plane(fn, stack):
    return np.stack([fn(p) for p in stack])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    x = synthetic_stack()
    save("input", x)
    u16 = x.astype(np.uint16)

    save("max_projection", x.max(axis=0, keepdims=True))
    save("mean_projection", x.astype(np.float64).mean(axis=0, keepdims=True))
    # Best focus: the plane whose Laplacian (scipy.ndimage.laplace, reflect) has the largest variance.
    focus = [ndi.laplace(p.astype(np.float64), mode="reflect").var() for p in x]
    save("best_focus_projection", x[int(np.argmax(focus))][None])
    save("crop", x[1:3, 5:45, 7:67])  # start_z=1 start_y=5 start_x=7 depth=2 height=40 width=60

    for method in ["mean", "sum", "max", "min"]:
        fn = getattr(np, method)
        b = x[:, : 64 // 3 * 3, : 80 // 3 * 3].astype(np.float64)
        b2 = fn(fn(b.reshape(3, 21, 3, 26, 3), axis=4), axis=2) if method in ("max", "min", "sum") else b.reshape(3, 21, 3, 26, 3).mean(axis=(2, 4))
        save(f"spatial_bin_2d_{method}", b2)
        c = x[:2, : 64 // 2 * 2, : 80 // 2 * 2].astype(np.float64).reshape(1, 2, 32, 2, 40, 2)
        c3 = c.mean(axis=(1, 3, 5)) if method == "mean" else fn(fn(fn(c, axis=5), axis=3), axis=1)
        save(f"spatial_bin_3d_{method}", c3)

    for sigma in [1.0, 2.5]:
        save(f"gaussian_filter_{sigma}", per_plane(lambda p: ndi.gaussian_filter(p.astype(np.float64), sigma, mode="reflect", truncate=4.0), x))

    for radius in [3, 10]:
        save(f"tophat_r{radius}", per_plane(lambda p: white_tophat(p, disk(radius)).astype(np.float64), u16))

    for radius, amount in [(1.0, 1.0), (2.0, 0.5)]:
        ref = per_plane(lambda p: unsharp_mask(p.astype(np.float64), radius=radius, amount=amount, preserve_range=True), x)
        save(f"sharpen_{radius}_{amount}", np.clip(ref, 0, 65535))

    save("stack_equalize_histogram", equalize_hist(x.astype(np.float64), nbins=65536) * 65535.0)

    lo, hi = np.percentile(x, [0.5, 99.5])
    save("stack_percentile_normalize", np.clip((x - lo) / (hi - lo) * 65535.0, 0, 65535))
    per = []
    for p in x:
        plo, phi = np.percentile(p, [1.0, 99.0])
        per.append(np.clip((p - plo) / (phi - plo) * 65535.0, 0, 65535))
    save("percentile_normalize", np.stack(per))

    cells(save)
    flatfield(save)
    quality(save)

    versions = {"numpy": np.__version__, "scipy": scipy.__version__, "scikit-image": skimage.__version__}
    (OUT / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    print(f"wrote {len(list(OUT.glob('*.npy')))} fixtures to {OUT} with {versions}")


if __name__ == "__main__":
    main()
