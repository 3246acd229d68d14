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
    let (h, w) = src.dim();
    let r = k.len() / 2;
    let mut out = Array2::<T>::default((h, w));
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
            o.iter_mut().zip(&padded[r..r + w]).for_each(|(ov, &c)| *ov = k[r] * c);
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
    let (h, w) = src.dim();
    let r = k.len() / 2;
    let src = src.as_standard_layout();
    let mut out = Array2::<T>::default((h, w));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(y, mut o)| {
        let o = o.as_slice_mut().expect("rows of a standard-layout array are contiguous");
        let row = |dy: isize| src.row(reflect(y as isize + dy, h));
        o.iter_mut().zip(row(0).iter()).for_each(|(ov, &c)| *ov = k[r] * c);
        for t in 1..=r {
            let (a, b) = (row(-(t as isize)), row(t as isize));
            let (a, b) = (a.as_slice().expect("standard layout"), b.as_slice().expect("standard layout"));
            add_weighted_pair(o, a, b, k[r + t]);
        }
    });
    out
}

/// `o[i] += wt · (a[i] + b[i])`. Compiled for AVX2 too and picked at run time (same arithmetic,
/// so the same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma"))]
fn add_weighted_pair<T: Sample>(o: &mut [T], a: &[T], b: &[T], wt: T) {
    for ((ov, &a), &b) in o.iter_mut().zip(a).zip(b) {
        *ov += wt * (a + b);
    }
}
