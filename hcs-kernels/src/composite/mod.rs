//! Channel composites.
//!
//! The torch and cuda variants, registered under the same name, are in `torch.rs` and `cuda.rs`
//! beside this file.

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "torch")]
pub mod torch;

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{ArrayView2, ArrayView3};

/// Weighted mean of the planes (e.g. channels): `[n, y, x]` → `[1, y, x]`.
///
/// Weights default to equal and are normalized to sum to 1; a weight list shorter than the stack
/// is padded with zeros.
#[memory(ndarray, planes = one, views = create_composite_views)]
#[hcs_macros::check(weights.as_ref().is_none_or(|w| w.iter().any(|x| *x > 0.0)), "weights must include a positive weight")]
#[hcs_macros::check(weights.as_ref().is_none_or(|w| image.planes.is_none_or(|p| w.len() == p)), "weights needs one entry per plane")]
pub fn create_composite(
    stack: NdarrayStack,
    #[param(default = None, doc = "per-plane weights; equal when omitted", range = 0.0..=1e6)] weights: Option<
        Vec<f32>,
    >,
) -> Result<NdarrayStack, crate::error::KernelError> {
    check_weights_for(weights.as_deref(), stack.dim().0)?;
    Ok(composite_of(stack.view(), weights.as_deref()))
}

/// [`create_composite`](fn@create_composite) of planes that lie apart (its plane-views form):
/// they are read where they are, not stacked first.
fn create_composite_views(
    planes: &[ArrayView2<'_, f32>],
    weights: Option<Vec<f32>>,
) -> Result<NdarrayStack, crate::error::KernelError> {
    check_weights_for(weights.as_deref(), planes.len())?;
    let norm = normalized_weights(weights.as_deref(), planes.len());
    Ok(crate::projection::over_plane_samples(planes, |slices, shape| {
        crate::projection::reduce_plane_slices::<f64>(
            slices,
            shape,
            |acc, p, row| add_weighted(acc, norm[p], row),
            to_f32,
        )
    }))
}

/// [`check_weights`], and one weight per plane of the `planes` a call receives.
fn check_weights_for(weights: Option<&[f32]>, planes: usize) -> Result<(), crate::error::KernelError> {
    check_weights(weights)?;
    match weights {
        Some(ws) if ws.len() != planes => {
            crate::checks::bad(format!("weights has {} entries for {planes} planes: give one per plane", ws.len()))
        }
        _ => Ok(()),
    }
}

/// The guard of the variants that can report an error: weights, when given, must be finite and
/// non-negative with a positive sum (otherwise the normalized weights are undefined or zero).
#[cfg_attr(not(any(feature = "torch", feature = "cuda")), allow(dead_code))]
pub(crate) fn check_weights(weights: Option<&[f32]>) -> Result<(), crate::error::KernelError> {
    let Some(ws) = weights else { return Ok(()) };
    if let Some(w) = ws.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return crate::checks::bad(format!("weights must be finite and non-negative, got {w}"));
    }
    if !ws.iter().any(|&w| w > 0.0) {
        return crate::checks::bad("weights must include at least one positive weight".into());
    }
    Ok(())
}

/// [`create_composite`](fn@create_composite) of a borrowed stack.
pub fn composite_of(stack: ArrayView3<'_, f32>, weights: Option<&[f32]>) -> NdarrayStack {
    let (n, h, w) = stack.dim();
    let norm = normalized_weights(weights, n);
    if n == 0 {
        return ndarray::Array3::zeros((1, h, w));
    }
    crate::projection::reduce_planes::<f64>(stack, |acc, p, row| add_weighted(acc, norm[p], row), to_f32)
}

/// The weights of `n` planes, summing to 1 (equal when none are given; a list shorter than the
/// planes padded with zeros; all zero when they sum to nothing).
fn normalized_weights(weights: Option<&[f32]>, n: usize) -> Vec<f64> {
    let raw: Vec<f64> = match weights {
        Some(ws) => (0..n).map(|i| ws.get(i).copied().map_or(0.0, f64::from)).collect(),
        None => vec![1.0; n],
    };
    let total: f64 = raw.iter().sum();
    if total > 0.0 { raw.iter().map(|w| w / total).collect() } else { vec![0.0; n] }
}

/// `acc[i] += row[i] · weight` in f64 (nothing for a zero weight): the fold of the composite.
/// Compiled for AVX2 and AVX-512 too and picked at run time (a product, then a sum, per
/// sample on every path: the same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn add_weighted(acc: &mut [f64], weight: f64, row: &[f32]) {
    if weight != 0.0 {
        acc.iter_mut().zip(row).for_each(|(a, &v)| *a += f64::from(v) * weight);
    }
}

/// The weighted sum in f32: the finish of the composite.
fn to_f32(sum: f64) -> f32 {
    sum as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn equal_weights_give_the_mean_and_weights_are_normalized() {
        let s = array![[[0.0, 10.0]], [[20.0, 30.0]]];
        assert_eq!(create_composite(s.clone(), None).expect("valid"), array![[[10.0, 20.0]]]);
        assert_eq!(create_composite(s.clone(), Some(vec![3.0, 1.0])).expect("valid"), array![[[5.0, 15.0]]]);
        assert!(create_composite(s.clone(), Some(vec![1.0])).is_err(), "one weight per plane");
        assert!(create_composite(s, Some(vec![0.0, 0.0])).is_err(), "all-zero weights");
    }

    #[test]
    fn the_views_form_gives_what_the_stacked_form_gives() {
        // Two chunks and a partial one; the second plane a strided view, as planes that lie
        // apart arrive.
        let n = 8192 + 11;
        let a = ndarray::Array2::from_shape_fn((3, n), |(y, x)| ((y * 13 + x * 7) % 251) as f32 * 1.5);
        let wide = ndarray::Array2::from_shape_fn((3, 2 * n), |(y, x)| ((y * 5 + x / 2) % 97) as f32 - 3.0);
        let b = wide.slice(ndarray::s![.., ..;2]);
        let mut stack = ndarray::Array3::zeros((2, 3, n));
        stack.index_axis_mut(ndarray::Axis(0), 0).assign(&a);
        stack.index_axis_mut(ndarray::Axis(0), 1).assign(&b);
        for weights in [None, Some(vec![3.0, 1.0]), Some(vec![0.0, 2.0])] {
            let want = create_composite(stack.clone(), weights.clone()).expect("valid");
            let got = create_composite_views(&[a.view(), b], weights.clone()).expect("valid");
            assert!(got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "{weights:?}");
        }
        assert!(create_composite_views(&[a.view(), b], Some(vec![1.0])).is_err(), "one weight per plane");
        assert!(create_composite_views(&[a.view(), b], Some(vec![0.0, 0.0])).is_err(), "all-zero weights");
    }
}
