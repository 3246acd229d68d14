//! Channel composites on cuda stacks (feature `cuda`).

use hcs_core::cuda::CudaStack;
use hcs_macros::memory;

use crate::error::KernelError;
use crate::projection::cuda::reduce;

/// Weighted average of the planes (cuda variant of [`crate::composite::create_composite`]).
#[memory(cuda, planes = one)]
#[hcs_macros::check(weights.as_ref().is_none_or(|w| w.iter().any(|x| *x > 0.0)), "weights must include a positive weight")]
#[hcs_macros::check(weights.as_ref().is_none_or(|w| image.planes.is_none_or(|p| w.len() == p)), "weights needs one entry per plane")]
pub fn create_composite(
    stack: CudaStack,
    #[param(default = None, doc = "per-plane weights; equal when omitted", range = 0.0..=1e6)] weights: Option<
        Vec<f32>,
    >,
) -> Result<CudaStack, KernelError> {
    super::check_weights(weights.as_deref())?;
    let n = stack.shape()[0];
    let raw: Vec<f64> = match weights.as_deref() {
        Some(ws) => (0..n).map(|i| ws.get(i).copied().map_or(0.0, f64::from)).collect(),
        None => vec![1.0; n],
    };
    let total: f64 = raw.iter().sum();
    let norm: Vec<f64> = if total > 0.0 { raw.iter().map(|w| w / total).collect() } else { vec![0.0; n] };
    reduce(&stack, Some(&norm), 1.0)
}
