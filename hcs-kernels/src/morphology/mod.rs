//! Grey-scale morphology with disk footprints, and the white top-hat built on it.
//!
//! A disk is the union of horizontal chords, and so the union of the rectangles
//! `[−d, d] × [−w(d), w(d)]` taken at each `d` where the chord half-width `w` steps down (9
//! rectangles for r = 13). Erosion by it is the minimum, over those rectangles, of a separable
//! rectangle erosion: a 1-D running minimum across x of width `2w+1`, then one down y of height
//! `2d+1`. Each 1-D filter is van Herk / Gil-Werman (three comparisons per pixel whatever the
//! width) applied to whole rows at once, so every inner loop runs along contiguous memory and
//! vectorizes; the pass across x runs on the transposed plane for the same reason. Boundaries
//! are SciPy's `reflect`, matching `skimage.morphology.white_tophat`. Written here because no
//! maintained crate offers grey-scale disk morphology on f32 (imageproc's is u8 only;
//! ndarray-ndimage's is binary only).
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

use crate::boundary::reflect;
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

/// Van Herk / Gil-Werman running `pick` over `2k+1` rows of `src` (`rows × cols`, row-major),
/// rows outside reflected: output row `y` is the `pick` of source rows `y−k ..= y+k`. Prefixes
/// (`g`) and suffixes (`h`) are taken within blocks of `2k+1` padded rows, so every window is
/// one suffix and one prefix; each step combines whole rows, so the loops vectorize.
fn running_rows<F: Fn(f32, f32) -> f32 + Copy>(
    pick: F,
    src: &[f32],
    (rows, cols): (usize, usize),
    k: usize,
    out: &mut [f32],
    g: &mut Vec<f32>,
    h: &mut Vec<f32>,
) {
    if k == 0 {
        out.copy_from_slice(src);
        return;
    }
    let (window, padded) = (2 * k + 1, rows + 2 * k);
    let source = |i: usize| {
        let r = reflect(i as isize - k as isize, rows);
        &src[r * cols..(r + 1) * cols]
    };
    let combine = |into: &mut [f32], a: &[f32], b: &[f32]| {
        into.iter_mut().zip(a).zip(b).for_each(|((o, &x), &y)| *o = pick(x, y));
    };
    g.resize(padded * cols, 0.0);
    h.resize(padded * cols, 0.0);
    for i in 0..padded {
        let (before, rest) = g.split_at_mut(i * cols);
        if i % window == 0 {
            rest[..cols].copy_from_slice(source(i));
        } else {
            combine(&mut rest[..cols], &before[(i - 1) * cols..], source(i));
        }
    }
    for i in (0..padded).rev() {
        let (upto, after) = h.split_at_mut((i + 1) * cols);
        if i % window == window - 1 || i == padded - 1 {
            upto[i * cols..].copy_from_slice(source(i));
        } else {
            combine(&mut upto[i * cols..], &after[..cols], source(i));
        }
    }
    for (y, o) in out.chunks_exact_mut(cols).enumerate().take(rows) {
        combine(o, &h[y * cols..(y + 1) * cols], &g[(y + 2 * k) * cols..(y + 2 * k + 1) * cols]);
    }
}

/// `dst` (`cols × rows`) = the transpose of `src` (`rows × cols`), in cache-sized tiles.
fn transpose(src: &[f32], (rows, cols): (usize, usize), dst: &mut [f32]) {
    const TILE: usize = 32;
    for y0 in (0..rows).step_by(TILE) {
        for x0 in (0..cols).step_by(TILE) {
            for y in y0..(y0 + TILE).min(rows) {
                for x in x0..(x0 + TILE).min(cols) {
                    dst[x * rows + y] = src[y * cols + x];
                }
            }
        }
    }
}

/// Disk min/max filter: the `pick` over the disk's rectangles (see the module docs), each a
/// running filter across x (on the transposed plane) and then down y.
fn disk_filter(op: Op, plane: ArrayView2<'_, f32>, r: usize) -> Array2<f32> {
    match op {
        Op::Min => disk_filter_with(plane, r, f32::min),
        Op::Max => disk_filter_with(plane, r, f32::max),
    }
}

fn disk_filter_with<F: Fn(f32, f32) -> f32 + Copy>(plane: ArrayView2<'_, f32>, r: usize, pick: F) -> Array2<f32> {
    let (height, width) = plane.dim();
    let half = chord_half_widths(r);
    let source: Vec<f32> = plane.iter().copied().collect();
    let n = height * width;
    if n == 0 {
        return plane.to_owned();
    }
    let mut across = vec![0.0f32; n];
    transpose(&source, (height, width), &mut across);
    let (mut g, mut h) = (Vec::new(), Vec::new());
    let (mut rows_t, mut rows, mut rect) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    let mut out: Option<Vec<f32>> = None;
    for d in 0..=r {
        if d < r && half[d + 1] == half[d] {
            continue; // this chord lies inside the rectangle of a longer run
        }
        running_rows(pick, &across, (width, height), half[d], &mut rows_t, &mut g, &mut h);
        transpose(&rows_t, (width, height), &mut rows);
        running_rows(pick, &rows, (height, width), d, &mut rect, &mut g, &mut h);
        match out.as_mut() {
            None => out = Some(rect.clone()),
            Some(o) => o.iter_mut().zip(&rect).for_each(|(o, &v)| *o = pick(*o, v)),
        }
    }
    // `out` holds exactly height × width samples in row-major order, so the shape always fits.
    Array2::from_shape_vec((height, width), out.unwrap_or(source)).unwrap_or_else(|_| plane.to_owned())
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
    // Planes are independent: one per worker.
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
        for r in [0, 1, 2, 5, 12, 13, 40] {
            assert_eq!(erode_disk(plane.view(), r), naive(Op::Min, plane.view(), r), "erode r={r}");
            assert_eq!(dilate_disk(plane.view(), r), naive(Op::Max, plane.view(), r), "dilate r={r}");
        }
    }

    #[test]
    fn thin_and_empty_planes_filter_like_a_direct_scan() {
        for (h, w) in [(1, 9), (9, 1), (2, 3), (40, 3)] {
            let plane = Array2::from_shape_fn((h, w), |(y, x)| ((y * 53 + x * 29) % 31) as f32);
            for r in [1, 3, 7] {
                assert_eq!(erode_disk(plane.view(), r), naive(Op::Min, plane.view(), r), "{h}×{w} r={r}");
                assert_eq!(dilate_disk(plane.view(), r), naive(Op::Max, plane.view(), r), "{h}×{w} r={r}");
            }
        }
        assert_eq!(erode_disk(Array2::<f32>::zeros((0, 5)).view(), 3).dim(), (0, 5));
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
