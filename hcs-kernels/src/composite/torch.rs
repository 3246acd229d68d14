//! Channel composites on torch stacks (feature `torch`).

use hcs_core::TorchStack;
use hcs_macros::memory;
use tch::{Kind, Tensor};

use crate::error::KernelError;
use crate::torch_support::{OnDevice, dims};

/// Weighted average of the planes (torch variant of [`crate::composite::create_composite`]):
/// weights normalized to sum 1, accumulated in f64.
#[memory(torch, planes = one)]
#[hcs_macros::check(weights.as_ref().is_none_or(|w| w.iter().any(|x| *x > 0.0)), "weights must include a positive weight")]
#[hcs_macros::check(weights.as_ref().is_none_or(|w| image.planes.is_none_or(|p| w.len() == p)), "weights needs one entry per plane")]
pub fn create_composite(
    stack: TorchStack,
    #[param(default = None, doc = "per-plane weights; equal when omitted", range = 0.0..=1e6)] weights: Option<
        Vec<f32>,
    >,
) -> Result<TorchStack, KernelError> {
    super::check_weights(weights.as_deref())?;
    let (n, h, w) = dims(&stack)?;
    let device = stack.device();
    if n == 0 {
        return Tensor::f_zeros([1, h as i64, w as i64], (Kind::Float, device)).on(device);
    }
    let raw: Vec<f64> = match weights.as_deref() {
        Some(ws) => (0..n).map(|i| ws.get(i).copied().map_or(0.0, f64::from)).collect(),
        None => vec![1.0; n],
    };
    let total: f64 = raw.iter().sum();
    let norm: Vec<f64> = if total > 0.0 { raw.iter().map(|w| w / total).collect() } else { vec![0.0; n] };
    let weights = Tensor::f_from_slice(&norm).and_then(|t| t.f_to_device(device)).on(device)?;
    stack
        .f_to_kind(Kind::Double)
        .and_then(|s| s.f_mul(&weights.f_view([n as i64, 1, 1])?))
        .and_then(|s| s.f_sum_dim_intlist([0i64].as_slice(), true, Kind::Double))
        .and_then(|s| s.f_to_kind(Kind::Float))
        .on(device)
}
