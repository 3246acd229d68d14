//! Separable correlation with a symmetric kernel and SciPy's `reflect` boundary, for f32 (the
//! Gaussian filters) and f64 (cell detection). Each tap pair is one multiply-add over whole row
//! slices, so the inner loops vectorize; rows run in parallel.

use std::ops::{Add, AddAssign, Mul};

use ndarray::{Array2, ArrayView2, Axis};
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
            padded.clear();
            // Only the r samples each side need reflecting; the row itself is copied whole.
            padded.extend((0..r as isize).map(|i| s[reflect(i - r as isize, w)]));
            match s.as_slice() {
                Some(row) => padded.extend_from_slice(row),
                None => padded.extend(s.iter().copied()),
            }
            padded.extend((0..r as isize).map(|i| s[reflect(w as isize + i, w)]));
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

/// The centre tap's products `centre · src`, in a standard-layout array: the output the other
/// taps are added to, written once (no zeroed array first).
fn centre_taps<T: Sample>(src: ArrayView2<'_, T>, centre: T) -> Array2<T> {
    let out = ndarray::Zip::from(src).par_map_collect(|&c| centre * c);
    if out.is_standard_layout() { out } else { out.as_standard_layout().into_owned() }
}

/// `o[i] += wt · (a[i] + b[i])`. Compiled for AVX2 too and picked at run time (same arithmetic,
/// so the same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma"))]
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
}
