//! Gaussian smoothing, separable, matching `scipy.ndimage.gaussian_filter(mode="reflect",
//! truncate=4.0)` per plane. Written here because no maintained crate offers an f32 Gaussian
//! with SciPy's boundary and truncation semantics on ndarray.

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::boundary::pad_row;
use crate::error::KernelError;

/// Normalized 1-D Gaussian weights with radius `round(truncate·σ)` (SciPy's rule).
pub fn kernel(sigma: f64, truncate: f64) -> Vec<f32> {
    let radius = (truncate * sigma + 0.5) as usize;
    let s2 = 2.0 * sigma * sigma;
    let w: Vec<f64> = (-(radius as isize)..=radius as isize).map(|x| (-((x * x) as f64) / s2).exp()).collect();
    let sum: f64 = w.iter().sum();
    w.iter().map(|v| (v / sum) as f32).collect()
}

/// Horizontal pass: each output row is a sum of shifted, contiguous slices of the padded row,
/// one multiply-add per symmetric tap pair, so the inner loop vectorizes over the row.
fn horizontal(src: ArrayView2<'_, f32>, k: &[f32]) -> Array2<f32> {
    let (h, w) = src.dim();
    let r = k.len() / 2;
    let mut out = Array2::<f32>::zeros((h, w));
    out.axis_iter_mut(Axis(0)).into_par_iter().zip(src.axis_iter(Axis(0))).for_each_init(
        || (Vec::new(), Vec::new()),
        |(row, padded), (mut o, src_row)| {
            row.clear();
            row.extend(src_row.iter().copied());
            pad_row(row, r, padded);
            let o = o.as_slice_mut().expect("rows of a standard-layout array are contiguous");
            o.iter_mut().zip(&padded[r..r + w]).for_each(|(ov, &c)| *ov = k[r] * c);
            for t in 1..=r {
                let wt = k[r + t];
                for ((ov, &a), &b) in o.iter_mut().zip(&padded[r - t..r - t + w]).zip(&padded[r + t..r + t + w]) {
                    *ov += wt * (a + b);
                }
            }
        },
    );
    out
}

/// Vertical pass: each output row is a weighted sum of whole (reflected) input rows, one
/// multiply-add per symmetric pair of rows.
fn vertical(src: ArrayView2<'_, f32>, k: &[f32]) -> Array2<f32> {
    let (h, w) = src.dim();
    let r = k.len() / 2;
    let src = src.as_standard_layout();
    let mut out = Array2::<f32>::zeros((h, w));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(y, mut o)| {
        let o = o.as_slice_mut().expect("rows of a standard-layout array are contiguous");
        let row = |dy: isize| src.row(crate::boundary::reflect(y as isize + dy, h));
        let centre = row(0);
        o.iter_mut().zip(centre.iter()).for_each(|(ov, &c)| *ov = k[r] * c);
        for t in 1..=r {
            let (a, b) = (row(-(t as isize)), row(t as isize));
            let (a, b) = (a.as_slice().expect("standard layout"), b.as_slice().expect("standard layout"));
            let wt = k[r + t];
            for ((ov, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *ov += wt * (a + b);
            }
        }
    });
    out
}

/// Smooth one plane (σ in pixels, in y and x).
pub fn gaussian_2d(plane: ArrayView2<'_, f32>, sigma: f64) -> Array2<f32> {
    if sigma <= 0.0 {
        return plane.to_owned();
    }
    let k = kernel(sigma, 4.0);
    vertical(horizontal(plane, &k).view(), &k)
}

/// A blur width must be a finite, non-negative number of pixels.
pub(crate) fn check_sigma(name: &str, value: f64) -> Result<(), KernelError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(KernelError::BadParameter(format!("{name} must be a non-negative number, got {value}")))
    }
}

/// Gaussian smoothing of each plane (`sigma` in pixels, in y and x).
#[memory(ndarray)]
pub fn gaussian_filter(
    mut stack: NdarrayStack,
    #[param(default = 1.0, doc = "standard deviation in pixels")] sigma: f64,
) -> Result<NdarrayStack, KernelError> {
    check_sigma("sigma", sigma)?;
    for mut plane in stack.axis_iter_mut(Axis(0)) {
        let smoothed = gaussian_2d(plane.view(), sigma);
        plane.assign(&smoothed);
    }
    Ok(stack)
}
