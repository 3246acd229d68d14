//! Grey-scale morphology with disk footprints, and the white top-hat built on it.
//!
//! A disk is the union of horizontal chords; erosion by it is the minimum, over the chord rows
//! `dy`, of a 1-D minimum filter of width `2·⌊√(r²−dy²)⌋+1` applied to row `y+dy`. Each 1-D
//! filter uses the van Herk / Gil-Werman algorithm (three comparisons per pixel whatever the
//! width), so erosion costs O(r) per pixel instead of the O(r²) of a direct footprint scan.
//! Boundaries are SciPy's `reflect`, matching `skimage.morphology.white_tophat`. Written here
//! because no maintained crate offers grey-scale disk morphology on f32 (imageproc's is u8
//! only; ndarray-ndimage's is binary only).
//!
//! The torch and cuda variants of [`tophat`], registered under the same name, are in `torch.rs`
//! and `cuda.rs` beside this file.

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "torch")]
pub mod torch;

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::boundary::{pad_row, reflect};
use crate::error::KernelError;

/// Half-widths of the disk's chords for `dy = 0..=r` (the `x² + y² ≤ r²` disk of scikit-image).
pub fn chord_half_widths(r: usize) -> Vec<usize> {
    (0..=r).map(|dy| (((r * r - dy * dy) as f64).sqrt() + 1e-9).floor() as usize).collect()
}

#[derive(Clone, Copy)]
enum Op {
    Min,
    Max,
}

/// Van Herk / Gil-Werman running min or max of width `2w+1` over `padded` (which carries `w`
/// samples of context each side); writes `out.len()` outputs. `pick` is monomorphized so the
/// inner loops are branch-free.
fn running<F: Fn(f32, f32) -> f32 + Copy>(
    pick: F,
    identity: f32,
    padded: &[f32],
    w: usize,
    out: &mut [f32],
    g: &mut Vec<f32>,
    h: &mut Vec<f32>,
) {
    let k = 2 * w + 1;
    let len = padded.len();
    g.resize(len, 0.0);
    h.resize(len, 0.0);
    for (gc, pc) in g.chunks_mut(k).zip(padded.chunks(k)) {
        let mut m = identity;
        for (gv, &v) in gc.iter_mut().zip(pc) {
            m = pick(m, v);
            *gv = m;
        }
    }
    for (hc, pc) in h.chunks_mut(k).zip(padded.chunks(k)) {
        let mut m = identity;
        for (hv, &v) in hc.iter_mut().rev().zip(pc.iter().rev()) {
            m = pick(m, v);
            *hv = m;
        }
    }
    let n = out.len();
    for ((o, &a), &b) in out.iter_mut().zip(&h[..n]).zip(&g[k - 1..k - 1 + n]) {
        *o = pick(a, b);
    }
}

/// Disk min/max filter. Rows are split into one band per worker; within a band every source row
/// is padded once and filtered once per chord width, and each result is folded into the two
/// output rows (`s ± d`) that use it.
fn disk_filter(op: Op, plane: ArrayView2<'_, f32>, r: usize) -> Array2<f32> {
    match op {
        Op::Min => disk_filter_with(plane, r, f32::min, f32::INFINITY),
        Op::Max => disk_filter_with(plane, r, f32::max, f32::NEG_INFINITY),
    }
}

fn disk_filter_with<F: Fn(f32, f32) -> f32 + Copy + Sync>(
    plane: ArrayView2<'_, f32>,
    r: usize,
    pick: F,
    identity: f32,
) -> Array2<f32> {
    let (height, width) = plane.dim();
    let half = chord_half_widths(r);
    let plane = plane.as_standard_layout();
    let mut out = Array2::<f32>::from_elem((height, width), identity);
    let bands = rayon::current_num_threads().clamp(1, height.max(1));
    let band_h = height.div_ceil(bands).max(1);
    out.axis_chunks_iter_mut(Axis(0), band_h).into_par_iter().enumerate().for_each(|(b, mut band)| {
        let (y0, y1) = (b * band_h, (b * band_h + band.dim().0).min(height));
        let (mut padded, mut tmp, mut g, mut h) = (Vec::new(), vec![0.0f32; width], Vec::new(), Vec::new());
        let lo = y0 as isize - r as isize;
        let hi = y1 as isize + r as isize;
        for s in lo..hi {
            let src = plane.row(reflect(s, height));
            let src = src.as_slice().expect("standard layout");
            pad_row(src, r, &mut padded);
            for (d, &w) in half.iter().enumerate() {
                let targets = [s - d as isize, s + d as isize];
                let wanted = |t: isize| t >= y0 as isize && t < y1 as isize;
                if !(wanted(targets[0]) || d > 0 && wanted(targets[1])) {
                    continue;
                }
                running(pick, identity, &padded[r - w..r + w + width], w, &mut tmp, &mut g, &mut h);
                for (i, &t) in targets.iter().enumerate() {
                    if (i == 1 && d == 0) || !wanted(t) {
                        continue;
                    }
                    let mut row = band.row_mut(t as usize - y0);
                    let row = row.as_slice_mut().expect("standard layout");
                    for (o, &v) in row.iter_mut().zip(&tmp) {
                        *o = pick(*o, v);
                    }
                }
            }
        }
    });
    out
}

/// Grey-scale erosion of a plane by a disk of radius `r`.
pub fn erode_disk(plane: ArrayView2<'_, f32>, r: usize) -> Array2<f32> {
    disk_filter(Op::Min, plane, r)
}

/// Grey-scale dilation of a plane by a disk of radius `r`.
pub fn dilate_disk(plane: ArrayView2<'_, f32>, r: usize) -> Array2<f32> {
    disk_filter(Op::Max, plane, r)
}

/// White top-hat of one plane: the plane minus its opening by a disk.
pub fn white_tophat_2d(plane: ArrayView2<'_, f32>, r: usize) -> Array2<f32> {
    let opened = dilate_disk(erode_disk(plane, r).view(), r);
    &plane - &opened
}

/// Mean-downsample by `f` (trailing rows/columns that do not fill a block use the pixels there).
/// One pass over the rows: each input row is added into its block row's column sums.
fn downsample_mean(plane: ArrayView2<'_, f32>, f: usize) -> Array2<f32> {
    let (h, w) = plane.dim();
    let (dh, dw) = (h.div_ceil(f), w.div_ceil(f));
    let mut out = Array2::<f32>::zeros((dh, dw));
    let mut sums = vec![0f64; dw];
    for (by, mut out_row) in out.rows_mut().into_iter().enumerate() {
        sums.iter_mut().for_each(|v| *v = 0.0);
        let rows = (by * f..((by + 1) * f).min(h)).len();
        for y in by * f..by * f + rows {
            let row = plane.row(y);
            match row.as_slice() {
                Some(r) => r
                    .chunks(f)
                    .zip(sums.iter_mut())
                    .for_each(|(c, s)| *s += c.iter().map(|&v| f64::from(v)).sum::<f64>()),
                None => row.iter().enumerate().for_each(|(x, &v)| sums[x / f] += f64::from(v)),
            }
        }
        for (bx, (o, &sum)) in out_row.iter_mut().zip(&sums).enumerate() {
            let cols = (bx * f..((bx + 1) * f).min(w)).len();
            *o = (sum / (rows * cols) as f64) as f32;
        }
    }
    out
}

/// The guards of every [`tophat`] variant on a `[n, h, w]` stack: `downsample_factor` in
/// `1..=` the larger side of the plane (a block larger than the plane is the whole plane), and
/// the disk no larger than the plane (`selem_radius ≤` its larger side), which bounds the chord
/// table (`r + 1` widths), the padded rows (`w + 2r`) and the filter's work by the image.
pub(crate) fn check_sizes((_, h, w): (usize, usize, usize), selem_radius: usize, f: usize) -> Result<(), KernelError> {
    let side = crate::checks::larger_side(h, w);
    crate::checks::int_in("downsample_factor", f, 1, side, "the larger side of the image")?;
    crate::checks::int_in("selem_radius", selem_radius, 0, side, "the larger side of the image, pixels")
}

/// White top-hat background removal per plane with a disk of `selem_radius` pixels.
///
/// With `downsample_factor` f > 1 the background (the opening) is estimated on a mean-downsampled
/// plane with a disk of `selem_radius / f`, upsampled by pixel replication, and subtracted from
/// the full-resolution plane, clamped at 0 — f² fewer pixels and an f× smaller disk.
#[memory(ndarray)]
#[hcs_macros::check(selem_radius <= image.height.max(image.width) && downsample_factor <= image.height.max(image.width), "the disk and the downsampling must fit in the image")]
pub fn tophat(
    mut stack: NdarrayStack,
    #[param(default = 50, doc = "disk radius in pixels", range = 1..=1000)] selem_radius: usize,
    #[param(default = 4, doc = "estimate the background at 1/f resolution (1 = exact)", range = 1..=64)]
    downsample_factor: usize,
) -> Result<NdarrayStack, KernelError> {
    check_sizes(stack.dim(), selem_radius, downsample_factor)?;
    // Planes are independent: one per worker (the disk filters split bands within a plane too).
    stack.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut plane| {
        if downsample_factor == 1 {
            let result = white_tophat_2d(plane.view(), selem_radius);
            plane.assign(&result);
            return;
        }
        let f = downsample_factor;
        let small = downsample_mean(plane.view(), f);
        let r = (selem_radius as f64 / f as f64).round().max(1.0) as usize;
        let background = dilate_disk(erode_disk(small.view(), r).view(), r);
        // Subtract the background, each of its pixels replicated over its f × f block, in place.
        for (y, mut row) in plane.rows_mut().into_iter().enumerate() {
            let bg = background.row(y / f);
            match row.as_slice_mut() {
                Some(r) => {
                    r.chunks_mut(f).zip(bg.iter()).for_each(|(c, &b)| c.iter_mut().for_each(|v| *v = (*v - b).max(0.0)))
                }
                None => row.iter_mut().enumerate().for_each(|(x, v)| *v = (*v - bg[x / f]).max(0.0)),
            }
        }
    });
    Ok(stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(op: Op, a: f32, b: f32) -> f32 {
        match op {
            Op::Min => a.min(b),
            Op::Max => a.max(b),
        }
    }

    fn naive(op: Op, plane: ArrayView2<'_, f32>, r: usize) -> Array2<f32> {
        let (h, w) = plane.dim();
        let r2 = (r * r) as isize;
        Array2::from_shape_fn((h, w), |(y, x)| {
            let mut acc = match op {
                Op::Min => f32::INFINITY,
                Op::Max => f32::NEG_INFINITY,
            };
            for dy in -(r as isize)..=(r as isize) {
                for dx in -(r as isize)..=(r as isize) {
                    if dy * dy + dx * dx <= r2 {
                        let v = plane[[reflect(y as isize + dy, h), reflect(x as isize + dx, w)]];
                        acc = pick(op, acc, v);
                    }
                }
            }
            acc
        })
    }

    #[test]
    fn chord_decomposition_equals_a_direct_disk_scan() {
        let plane = Array2::from_shape_fn((23, 31), |(y, x)| ((y * 37 + x * 91) % 97) as f32);
        for r in [0, 1, 2, 5, 12, 40] {
            assert_eq!(erode_disk(plane.view(), r), naive(Op::Min, plane.view(), r), "erode r={r}");
            assert_eq!(dilate_disk(plane.view(), r), naive(Op::Max, plane.view(), r), "dilate r={r}");
        }
    }

    #[test]
    fn downsampled_tophat_keeps_spots_and_flattens_a_ramp() {
        let mut plane = Array2::from_shape_fn((64, 64), |(y, x)| 1000.0 + 10.0 * (x + y) as f32);
        plane[[30, 30]] += 5000.0;
        let stack = plane.insert_axis(Axis(0));
        let out = tophat(stack, 8, 2).expect("runs");
        assert!(out[[0, 30, 30]] > 4000.0, "spot kept: {}", out[[0, 30, 30]]);
        assert!(out[[0, 5, 50]] < 150.0, "ramp removed: {}", out[[0, 5, 50]]);
        assert!(tophat(Array2::zeros((4, 4)).insert_axis(Axis(0)), 2, 0).is_err());
        let err = tophat(Array2::zeros((4, 6)).insert_axis(Axis(0)), usize::MAX, 1).expect_err("disk too large");
        assert_eq!(
            err.to_string(),
            format!("selem_radius must be in 0..=6 (the larger side of the image, pixels), got {}", usize::MAX)
        );
        assert!(tophat(Array2::zeros((4, 6)).insert_axis(Axis(0)), 6, 7).is_err());
        assert!(tophat(Array2::zeros((4, 6)).insert_axis(Axis(0)), 6, 6).is_ok());
    }
}
