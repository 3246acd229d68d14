//! Grey-scale morphology with disk footprints, and the white top-hat built on it.
//!
//! A disk is the union of horizontal chords: the chord at row offset `dy` has half-width
//! `w(|dy|)` (9 distinct widths for r = 13). Erosion by it is, for each output row, the minimum
//! over the `2r+1` rows around it of each row's running minimum across x of width `2w(|dy|)+1`.
//! The running minima of every width `0..=r` are built one from the other (from half-width 2
//! on, widening a window by one on both sides is the minimum of two neighbours of the
//! narrower one: their windows overlap), and the distinct
//! ones kept for the `2r+1` rows an output row reads; every inner loop combines whole rows of
//! contiguous memory, so it vectorizes, and nothing is transposed. Boundaries
//! are SciPy's `reflect`, matching `skimage.morphology.white_tophat`. Written here because no
//! maintained crate offers grey-scale disk morphology on f32 (imageproc's is u8 only;
//! ndarray-ndimage's is binary only).
//!
//! The torch and cuda variants of [`tophat`](fn@tophat), registered under the same name, are in `torch.rs`
//! and `cuda.rs` beside this file.

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "torch")]
pub mod torch;

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
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

/// Disk min/max filter (see the module docs): every row's chord filters, then for each output
/// row the `pick` over the `2r+1` rows around it of the chord filter of each row's half-width.
fn disk_filter(op: Op, plane: ArrayView2<'_, f32>, r: usize) -> Array2<f32> {
    disk_filter_with(plane, r, op)
}

/// `into[i] = pick(a[i], b[i])` over whole rows (`f32::min` or `f32::max`). Compiled for AVX2 and AVX-512
/// too and picked at run time (the same picks, so the same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn combine(op: Op, into: &mut [f32], a: &[f32], b: &[f32]) {
    match op {
        Op::Min => into.iter_mut().zip(a).zip(b).for_each(|((o, &x), &y)| *o = x.min(y)),
        Op::Max => into.iter_mut().zip(a).zip(b).for_each(|((o, &x), &y)| *o = x.max(y)),
    }
}

/// `into[i] = pick(mid[i], pick(left[i], right[i]))`. Compiled for AVX2 and AVX-512 too and picked at run
/// time (same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn combine_three(op: Op, into: &mut [f32], left: &[f32], mid: &[f32], right: &[f32]) {
    let rows = into.iter_mut().zip(left).zip(mid.iter().zip(right));
    match op {
        Op::Min => rows.for_each(|((o, &l), (&m, &r))| *o = m.min(l.min(r))),
        Op::Max => rows.for_each(|((o, &l), (&m, &r))| *o = m.max(l.max(r))),
    }
}

/// `into[i] = pick(into[i], pick(above[i], below[i]))`. Compiled for AVX2 and AVX-512 too and picked at run
/// time (same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn combine_into(op: Op, into: &mut [f32], above: &[f32], below: &[f32]) {
    let rows = into.iter_mut().zip(above).zip(below);
    match op {
        Op::Min => rows.for_each(|((o, &a), &b)| *o = o.min(a.min(b))),
        Op::Max => rows.for_each(|((o, &a), &b)| *o = o.max(a.max(b))),
    }
}

fn disk_filter_with(plane: ArrayView2<'_, f32>, r: usize, op: Op) -> Array2<f32> {
    let (height, width) = plane.dim();
    if height * width == 0 {
        return plane.to_owned();
    }
    let half = chord_half_widths(r);
    // The distinct half-widths (`half` never grows with `dy`), and which of them each `dy` uses.
    let mut widths: Vec<usize> = Vec::with_capacity(half.len());
    let mut slot_of_dy = Vec::with_capacity(half.len());
    for &hw in &half {
        if widths.last() != Some(&hw) {
            widths.push(hw);
        }
        slot_of_dy.push(widths.len() - 1);
    }
    // Rows are numbered on the plane padded by `r` reflected rows above and below; output row
    // `y` reads padded rows `y ..= y + 2r`. Their chord filters live in a ring of `2r + 1`
    // entries (each entry: one row per distinct width), so the scratch is bounded by the disk,
    // not by the plane.
    let (window, entry) = (2 * r + 1, widths.len() * width);
    let mut ring = vec![0.0f32; window * entry];
    let mut scratch = ChordScratch::new(width, r);
    let mut fill = |p: usize, ring: &mut [f32]| {
        let at = (p % window) * entry;
        let source = plane.row(reflect(p as isize - r as isize, height));
        scratch.chords(op, source, &widths, &mut ring[at..at + entry]);
    };
    for p in 0..2 * r {
        fill(p, &mut ring);
    }
    // Each output row starts as a copy of its centre row's chord filter (no zeroed plane first).
    let mut out = Vec::with_capacity(height * width);
    for y in 0..height {
        fill(y + 2 * r, &mut ring);
        let row = |p: usize, s: usize| &ring[(p % window) * entry + s * width..(p % window) * entry + (s + 1) * width];
        out.extend_from_slice(row(y + r, slot_of_dy[0]));
        let o = &mut out[y * width..];
        for (dy, &s) in slot_of_dy.iter().enumerate().skip(1) {
            combine_into(op, o, row(y + r - dy, s), row(y + r + dy, s));
        }
    }
    // `out` holds exactly height × width samples in row-major order, so the shape always fits.
    Array2::from_shape_vec((height, width), out).unwrap_or_else(|_| plane.to_owned())
}

/// The buffers of one row's chord filters.
struct ChordScratch {
    r: usize,
    /// The row reflected by `r` samples at both ends, then filtered in place, wider each step.
    cur: Vec<f32>,
    next: Vec<f32>,
    /// A strided source row, copied contiguous.
    row: Vec<f32>,
}

impl ChordScratch {
    fn new(width: usize, r: usize) -> Self {
        let padded = width + 2 * r;
        ChordScratch { r, cur: vec![0.0; padded], next: vec![0.0; padded], row: vec![0.0; width] }
    }

    /// `into[s]` (one row per distinct half-width, `widths` decreasing from `r`) = the `pick`
    /// across x of `source` over a window of half-width `widths[s]`, reflected at the ends.
    fn chords(&mut self, op: Op, source: ArrayView1<'_, f32>, widths: &[usize], into: &mut [f32]) {
        let (r, width) = (self.r, self.row.len());
        let row: &[f32] = match source.as_slice() {
            Some(s) => s,
            None => {
                self.row.iter_mut().zip(source.iter()).for_each(|(o, &v)| *o = v);
                &self.row
            }
        };
        let padded = self.cur.len();
        // The row itself in the middle, its `r` reflected samples at each end.
        let (left, rest) = self.cur.split_at_mut(r);
        let (mid, right) = rest.split_at_mut(width);
        for (j, c) in left.iter_mut().enumerate() {
            *c = row[reflect(j as isize - r as isize, width)];
        }
        mid.copy_from_slice(row);
        for (j, c) in right.iter_mut().enumerate() {
            *c = row[reflect((width + j) as isize, width)];
        }
        // `cur` = the pick over a window of half-width k around each padded position, k = 0..=r.
        let mut slot = widths.len();
        for k in 0..=r {
            if slot > 0 && widths[slot - 1] == k {
                slot -= 1;
                into[slot * width..(slot + 1) * width].copy_from_slice(&self.cur[r..r + width]);
            }
            if slot == 0 {
                break; // the widest chord (half-width r, at dy = 0) is stored
            }
            let (cur, next) = (&self.cur, &mut self.next[1..padded - 1]);
            if k == 0 {
                // Half-width 1 takes the centre too; from 2 on, widening a window by one on both
                // sides is the pick of its two neighbours one narrower (their windows overlap).
                combine_three(op, next, &cur[..padded - 2], &cur[1..padded - 1], &cur[2..]);
            } else {
                combine(op, next, &cur[..padded - 2], &cur[2..]);
            }
            std::mem::swap(&mut self.cur, &mut self.next);
        }
    }
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

/// `columns[i] += row[i]` (in f64). Compiled for AVX2 and AVX-512 too and picked at run time (same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn add_to_columns(columns: &mut [f64], row: &[f32]) {
    for (s, &v) in columns.iter_mut().zip(row) {
        *s += f64::from(v);
    }
}

/// A sample less its background, clamped at 0: the top-hat's last step, whichever form writes it.
#[inline(always)]
fn clamped_difference(v: f32, b: f32) -> f32 {
    (v - b).max(0.0)
}

/// `v ← max(v − b, 0)` over a row and its background. Compiled for AVX2 and AVX-512 too and picked at run
/// time (same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn subtract_clamped(row: &mut [f32], background: &[f32]) {
    for (v, &b) in row.iter_mut().zip(background) {
        *v = clamped_difference(*v, b);
    }
}

/// Mean-downsample by `f` (trailing rows/columns that do not fill a block use the pixels there).
/// The `f` rows of a block row are added into per-column sums (whole rows at once, so the
/// loop vectorizes), then each block's `f` column sums are added.
fn downsample_mean(plane: ArrayView2<'_, f32>, f: usize) -> Array2<f32> {
    let (h, w) = plane.dim();
    let (dh, dw) = (h.div_ceil(f), w.div_ceil(f));
    let mut out = Array2::<f32>::zeros((dh, dw));
    let mut columns = vec![0f64; w];
    for (by, mut out_row) in out.rows_mut().into_iter().enumerate() {
        columns.iter_mut().for_each(|v| *v = 0.0);
        let rows = (by * f..((by + 1) * f).min(h)).len();
        for y in by * f..by * f + rows {
            let row = plane.row(y);
            // The next row's lines asked for now (a hint, see `hcs_vfs::ahead`).
            hcs_vfs::ahead::row(&plane, y + 1);
            match row.as_slice() {
                Some(r) => add_to_columns(&mut columns, r),
                None => add_to_columns(&mut columns, &row.to_vec()),
            }
        }
        for (o, block) in out_row.iter_mut().zip(columns.chunks(f)) {
            *o = (block.iter().sum::<f64>() / (rows * block.len()) as f64) as f32;
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
#[memory(ndarray, views = tophat_views)]
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
        let background = background_of(plane.view(), selem_radius, f);
        // Subtract the background, each of its pixels replicated over its f × f block, in place:
        // each background row is widened once, then subtracted from its f plane rows whole.
        let width = plane.ncols();
        let mut wide = vec![0.0f32; width];
        match plane.as_slice_mut() {
            // Row by row, the next row's lines asked for first (a hint, see `hcs_vfs::ahead`).
            Some(mut rest) => {
                let mut y = 0;
                while rest.len() >= width && width > 0 {
                    let (row, after) = rest.split_at_mut(width);
                    hcs_vfs::ahead::all(&after[..width.min(after.len())]);
                    widen(&background, f, y, &mut wide);
                    subtract_clamped(row, &wide);
                    (rest, y) = (after, y + 1);
                }
            }
            None => {
                for (y, mut row) in plane.rows_mut().into_iter().enumerate() {
                    widen(&background, f, y, &mut wide);
                    match row.as_slice_mut() {
                        Some(r) => subtract_clamped(r, &wide),
                        None => row.iter_mut().zip(&wide).for_each(|(v, &b)| *v = clamped_difference(*v, b)),
                    }
                }
            }
        }
    });
    Ok(stack)
}

/// The background of a plane at 1/`f` resolution (`f` > 1): the opening, with a disk of
/// `selem_radius / f`, of its mean-downsampled plane.
fn background_of(plane: ArrayView2<'_, f32>, selem_radius: usize, f: usize) -> Array2<f32> {
    let small = downsample_mean(plane, f);
    let r = (selem_radius as f64 / f as f64).round().max(1.0) as usize;
    dilate_disk(erode_disk(small.view(), r).view(), r)
}

/// At the first plane row `y` of each block of `f` rows: the background row of that block,
/// each of its pixels replicated `f` times, into `wide` (the plane's width).
fn widen(background: &Array2<f32>, f: usize, y: usize, wide: &mut [f32]) {
    if y.is_multiple_of(f) {
        let bg = background.row(y / f);
        for (c, &b) in wide.chunks_mut(f).zip(bg.iter()) {
            c.iter_mut().for_each(|v| *v = b);
        }
    }
}

/// [`tophat`](fn@tophat) of planes that lie apart (its plane-views form): each output sample is
/// written once, from the plane's row less the background, into a new stack; the planes are
/// read where they are and left as they were (a step that keeps them for a later step then needs
/// no copy of them). The same arithmetic as the stacked form, so the same samples.
fn tophat_views(
    planes: &[ArrayView2<'_, f32>],
    selem_radius: usize,
    downsample_factor: usize,
) -> Result<NdarrayStack, KernelError> {
    use hcs_vfs::fill::F32Out;
    let (h, w) = planes.first().map_or((0, 0), |p| p.dim());
    check_sizes((planes.len(), h, w), selem_radius, downsample_factor)?;
    let f = downsample_factor;
    let mut out = Vec::new();
    let append_row = |slot: &mut hcs_vfs::fill::PlaneSlot<'_>, row: ArrayView1<'_, f32>| match row.as_slice() {
        Some(r) => slot.append(r, |v| v),
        None => slot.append(&row.to_vec(), |v| v),
    };
    hcs_vfs::fill::fill_planes(
        &mut out,
        h * w,
        planes.len(),
        |i, slot| {
            let plane = planes[i];
            if f == 1 {
                white_tophat_2d(plane, selem_radius).rows().into_iter().for_each(|row| append_row(slot, row));
                return Ok(());
            }
            let background = background_of(plane, selem_radius, f);
            let mut wide = vec![0.0f32; w];
            for (y, row) in plane.rows().into_iter().enumerate() {
                widen(&background, f, y, &mut wide);
                // Written once into the new plane, not appended and then changed in place.
                match row.as_slice() {
                    Some(r) => slot.append_pairs(r, &wide, clamped_difference),
                    None => slot.append_pairs(&row.to_vec(), &wide, clamped_difference),
                }
            }
            Ok(())
        },
        |i, n| KernelError::BadInput(format!("top-hat plane {i}: {n} samples written for a {h} × {w} plane")),
    )?;
    ndarray::Array3::from_shape_vec((planes.len(), h, w), out)
        .map_err(|e| KernelError::BadInput(format!("top-hat output of {} planes of {h} × {w}: {e}", planes.len())))
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
        // Strided rows (a transposed view), fractional samples and a NaN, which min and max skip.
        let mut odd = Array2::from_shape_fn((19, 26), |(y, x)| ((y * 13 + x * 7) % 23) as f32 * 0.37 - 2.0);
        odd[[7, 9]] = f32::NAN;
        for r in [1, 4, 13] {
            assert_eq!(erode_disk(odd.t(), r), naive(Op::Min, odd.t(), r), "strided erode r={r}");
            assert_eq!(dilate_disk(odd.t(), r), naive(Op::Max, odd.t(), r), "strided dilate r={r}");
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

    #[test]
    fn the_views_form_gives_the_stacked_forms_samples_and_leaves_its_planes_as_they_were() {
        // Sizes a block of f does not divide, f = 1 (the exact filter), and planes of a strided view.
        let plane = |n: usize, (h, w): (usize, usize)| {
            Array2::from_shape_fn((h, w), |(y, x)| ((y * 131 + x * 71 + n * 997) % 4093) as f32 + 0.25 * x as f32)
        };
        for (shape, r, f) in [((37, 53), 9, 4), ((64, 48), 8, 2), ((20, 24), 3, 1), ((33, 33), 30, 33)] {
            let planes: Vec<Array2<f32>> = (0..3).map(|n| plane(n, shape)).collect();
            let views: Vec<ArrayView2<'_, f32>> = planes.iter().map(|p| p.view()).collect();
            let stacked = ndarray::stack(Axis(0), &views).expect("one shape");
            let want = tophat(stacked.clone(), r, f).expect("stacked form");
            let got = tophat_views(&views, r, f).expect("views form");
            assert_eq!(got, want, "{shape:?} r={r} f={f}");
            assert_eq!(planes.iter().map(|p| p.view()).collect::<Vec<_>>(), stacked.outer_iter().collect::<Vec<_>>());
            let transposed: Vec<ArrayView2<'_, f32>> = planes.iter().map(|p| p.t()).collect();
            let want_t = tophat(ndarray::stack(Axis(0), &transposed).expect("one shape"), r, f).expect("stacked form");
            assert_eq!(tophat_views(&transposed, r, f).expect("views form"), want_t, "transposed {shape:?}");
        }
        assert!(tophat_views(&[Array2::zeros((4, 6)).view()], 6, 7).is_err());
    }
}
