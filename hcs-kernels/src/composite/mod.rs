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
use ndarray::ArrayView3;

/// Weighted mean of the planes (e.g. channels): `[n, y, x]` → `[1, y, x]`.
///
/// Weights default to equal and are normalized to sum to 1; a weight list shorter than the stack
/// is padded with zeros.
#[memory(ndarray, planes = one)]
#[hcs_macros::check(weights.as_ref().is_none_or(|w| w.iter().any(|x| *x > 0.0)), "weights must include a positive weight")]
#[hcs_macros::check(weights.as_ref().is_none_or(|w| image.planes.is_none_or(|p| w.len() == p)), "weights needs one entry per plane")]
pub fn create_composite(
    stack: NdarrayStack,
    #[param(default = None, doc = "per-plane weights; equal when omitted", range = 0.0..=1e6)] weights: Option<
        Vec<f32>,
    >,
) -> Result<NdarrayStack, crate::error::KernelError> {
    check_weights(weights.as_deref())?;
    if let Some(ws) = &weights
        && ws.len() != stack.dim().0
    {
        return crate::checks::bad(format!(
            "weights has {} entries for {} planes: give one per plane",
            ws.len(),
            stack.dim().0
        ));
    }
    Ok(composite_of(stack.view(), weights.as_deref()))
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
    let raw: Vec<f64> = match weights {
        Some(ws) => (0..n).map(|i| ws.get(i).copied().map_or(0.0, f64::from)).collect(),
        None => vec![1.0; n],
    };
    let total: f64 = raw.iter().sum();
    let norm: Vec<f64> = if total > 0.0 { raw.iter().map(|w| w / total).collect() } else { vec![0.0; n] };
    if n == 0 {
        return ndarray::Array3::zeros((1, h, w));
    }
    crate::projection::reduce_planes::<f64>(
        stack,
        |acc, p, row| {
            let wt = norm[p];
            if wt != 0.0 {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += f64::from(v) * wt);
            }
        },
        |acc, out| out.iter_mut().zip(acc).for_each(|(o, &a)| *o = a as f32),
    )
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
}
