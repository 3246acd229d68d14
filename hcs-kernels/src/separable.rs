//! Separable correlation with a symmetric kernel and SciPy's `reflect` boundary, for f32 (the
//! Gaussian filters) and f64 (cell detection). Each tap pair is one multiply-add over whole row
//! slices, so the inner loops vectorize; rows run in parallel.

use std::ops::{Add, AddAssign, Mul};

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::boundary::reflect;

/// A sample type the filters run in.
pub trait Sample: Copy + Send + Sync + Default + Add<Output = Self> + Mul<Output = Self> + AddAssign {}

impl Sample for f32 {}
impl Sample for f64 {}

/// Correlate every row (axis 1) with the symmetric kernel `k` (odd length).
pub fn along_x<T: Sample>(src: ArrayView2<'_, T>, k: &[T]) -> Array2<T> {
    let w = src.ncols();
    let r = k.len() / 2;
    let mut out = centre_taps(src, k[r]);
    out.axis_iter_mut(Axis(0)).into_par_iter().zip(src.axis_iter(Axis(0))).for_each_init(
        Vec::new,
        |padded, (mut o, s)| {
            pad_reflected(padded, s, r);
            let o = o.as_slice_mut().expect("rows of a standard-layout array are contiguous");
            for t in 1..=r {
                add_weighted_pair(o, &padded[r - t..r - t + w], &padded[r + t..r + t + w], k[r + t]);
            }
        },
    );
    out
}

/// Correlate every column (axis 0) with the symmetric kernel `k`: each output row is a weighted
/// sum of whole (reflected) input rows.
pub fn along_y<T: Sample>(src: ArrayView2<'_, T>, k: &[T]) -> Array2<T> {
    let h = src.nrows();
    let r = k.len() / 2;
    let src = src.as_standard_layout();
    let mut out = centre_taps(src.view(), k[r]);
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(y, mut o)| {
        let o = o.as_slice_mut().expect("rows of a standard-layout array are contiguous");
        let row = |dy: isize| src.row(reflect(y as isize + dy, h));
        for t in 1..=r {
            let (a, b) = (row(-(t as isize)), row(t as isize));
            let (a, b) = (a.as_slice().expect("standard layout"), b.as_slice().expect("standard layout"));
            add_weighted_pair(o, a, b, k[r + t]);
        }
    });
    out
}

/// `dst` ← (`ka` ⋆ `src` − `kb` ⋆ `src`) over the window of `src` that starts at `origin` and
/// is `dst`'s size, each term a separable correlation (x, then y) with its symmetric kernel: the
/// samples [`along_y`]`(`[`along_x`]`(src, k), k)` gives for either kernel, the same products
/// added in the same order (so the same bits), subtracted as f32. One pass per direction for
/// both kernels into two working buffers, only over the window's columns (and the rows its y
/// taps read), and no whole-size intermediate arrays: a difference of Gaussians of a tile's
/// border band costs the filtering, not the allocations around it.
pub fn difference_into(
    src: ArrayView2<'_, f32>,
    (ka, kb): (&[f32], &[f32]),
    mut dst: ArrayViewMut2<'_, f32>,
    (oy, ox): (usize, usize),
) {
    let (h, w) = src.dim();
    let (dh, dw) = dst.dim();
    if dh == 0 || dw == 0 {
        return;
    }
    debug_assert!(oy + dh <= h && ox + dw <= w, "the window lies inside the source");
    let r = ka.len().max(kb.len()) / 2;
    // The rows the window's y taps read (reflected at the source's borders, which in a short
    // source can be any row): the x pass covers `first..=last`.
    let reach = |y: usize, d: isize| reflect(y as isize + d, h);
    let (first, last) = (oy..oy + dh)
        .flat_map(|y| (-(r as isize)..=r as isize).map(move |d| (y, d)))
        .fold((h, 0), |(lo, hi), (y, d)| (lo.min(reach(y, d)), hi.max(reach(y, d))));
    let rows = last - first + 1;
    // x pass: rows `first..=last`, columns `ox..ox + dw`, both kernels.
    let (mut xa, mut xb) = (vec![0f32; rows * dw], vec![0f32; rows * dw]);
    let mut padded = Vec::with_capacity(w + 2 * r);
    for (i, (oa, ob)) in xa.chunks_exact_mut(dw).zip(xb.chunks_exact_mut(dw)).enumerate() {
        let s = src.row(first + i);
        pad_reflected(&mut padded, s, r);
        let at = |d: isize| &padded[(r as isize + ox as isize + d) as usize..][..dw];
        correlate_into(oa, ka, at);
        correlate_into(ob, kb, at);
    }
    // y pass: the window's rows, each the difference of the two kernels' sums.
    let (mut ya, mut yb) = (vec![0f32; dw], vec![0f32; dw]);
    for (j, mut out) in dst.rows_mut().into_iter().enumerate() {
        let y = oy + j;
        let at = |d: isize| (reach(y, d) - first) * dw;
        correlate_into(&mut ya, ka, |d| &xa[at(d)..][..dw]);
        correlate_into(&mut yb, kb, |d| &xb[at(d)..][..dw]);
        out.iter_mut().zip(ya.iter().zip(&yb)).for_each(|(d, (&a, &b))| *d = a - b);
    }
}

/// `o` ← the correlation of the symmetric kernel `k` at each sample: the centre tap's products
/// first, then each pair of taps `t` from the nearest out (the order [`along_x`] and [`along_y`]
/// add in); `at(d)` is the samples `d` away, as long as `o`.
fn correlate_into<'a>(o: &mut [f32], k: &[f32], at: impl Fn(isize) -> &'a [f32]) {
    let r = k.len() / 2;
    o.iter_mut().zip(at(0)).for_each(|(o, &c)| *o = k[r] * c);
    for t in 1..=r {
        add_weighted_pair(o, at(-(t as isize)), at(t as isize), k[r + t]);
    }
}

/// `padded` ← row `s` with `r` reflected samples each side (sample `x` of the row at `r + x`).
/// Only the `r` samples each side need reflecting; the row itself is copied whole.
fn pad_reflected<T: Sample>(padded: &mut Vec<T>, s: ndarray::ArrayView1<'_, T>, r: usize) {
    let w = s.len();
    padded.clear();
    padded.extend((0..r as isize).map(|i| s[reflect(i - r as isize, w)]));
    match s.as_slice() {
        Some(row) => padded.extend_from_slice(row),
        None => padded.extend(s.iter().copied()),
    }
    padded.extend((0..r as isize).map(|i| s[reflect(w as isize + i, w)]));
}

/// The centre tap's products `centre · src`, in a standard-layout array: the output the other
/// taps are added to, written once (no zeroed array first).
fn centre_taps<T: Sample>(src: ArrayView2<'_, T>, centre: T) -> Array2<T> {
    let out = ndarray::Zip::from(src).par_map_collect(|&c| centre * c);
    if out.is_standard_layout() { out } else { out.as_standard_layout().into_owned() }
}

/// `o[i] += wt · (a[i] + b[i])`. Compiled for AVX2 and AVX-512 too and picked at run time (same arithmetic,
/// so the same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn add_weighted_pair<T: Sample>(o: &mut [T], a: &[T], b: &[T], wt: T) {
    for ((ov, &a), &b) in o.iter_mut().zip(a).zip(b) {
        *ov += wt * (a + b);
    }
}

#[cfg(test)]
mod tests {
    use ndarray::s;

    use super::*;

    /// Correlation sample by sample, in the filters' order of additions: the centre tap, then
    /// each pair of taps `t` from the nearest out.
    fn by_sample(src: ArrayView2<'_, f32>, k: &[f32], along_rows: bool) -> Array2<f32> {
        let (h, w) = src.dim();
        let r = k.len() / 2;
        Array2::from_shape_fn((h, w), |(y, x)| {
            let at = |d: isize| {
                if along_rows { src[[y, reflect(x as isize + d, w)]] } else { src[[reflect(y as isize + d, h), x]] }
            };
            let mut v = k[r] * at(0);
            for t in 1..=r {
                v += k[r + t] * (at(-(t as isize)) + at(t as isize));
            }
            v
        })
    }

    #[test]
    fn both_directions_equal_the_correlation_sample_by_sample_for_any_layout() {
        let k = [0.05f32, 0.1, 0.2, 0.3, 0.2, 0.1, 0.05];
        let img = Array2::from_shape_fn((37, 53), |(y, x)| ((y * 977 + x * 7919) % 1013) as f32 / 7.0 - 60.0);
        let sliced = img.slice(s![3..30, 5..41]);
        let transposed = img.t();
        for view in [img.view(), sliced, transposed] {
            let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let x = along_x(view, &k);
            assert!(x.is_standard_layout());
            assert_eq!(bits(&x), bits(&by_sample(view, &k, true)));
            let y = along_y(view, &k);
            assert!(y.is_standard_layout());
            assert_eq!(bits(&y), bits(&by_sample(view, &k, false)));
        }
    }

    #[test]
    fn a_difference_into_a_window_equals_the_whole_filterings_difference_bit_for_bit() {
        let (ka, kb) = ([0.1f32, 0.2, 0.4, 0.2, 0.1], [0.02f32, 0.05, 0.1, 0.15, 0.36, 0.15, 0.1, 0.05, 0.02]);
        let bits = |a: ndarray::ArrayView2<'_, f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // Sources larger and smaller than the kernels (a short source reflects taps more than once).
        for (h, w) in [(37usize, 53usize), (3, 40), (30, 2), (1, 1), (9, 9)] {
            let img = Array2::from_shape_fn((h, w), |(y, x)| ((y * 977 + x * 7919) % 1013) as f32 / 7.0 - 60.0);
            let whole = along_y(along_x(img.view(), &ka).view(), &ka) - along_y(along_x(img.view(), &kb).view(), &kb);
            for (oy, ox, dh, dw) in [(0, 0, h, w), (h / 3, w / 4, h - h / 3, w / 2), (h - 1, 0, 1, w), (0, w - 1, h, 1)]
            {
                let mut out = Array2::from_elem((dh, dw), f32::NAN);
                difference_into(img.view(), (&ka, &kb), out.view_mut(), (oy, ox));
                let want = whole.slice(s![oy..oy + dh, ox..ox + dw]);
                assert_eq!(bits(out.view()), bits(want), "{h} × {w}, window at ({oy}, {ox}) of {dh} × {dw}");
            }
        }
    }
}
