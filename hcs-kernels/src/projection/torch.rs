//! Projections on torch stacks (feature `torch`): planes reduced to one.

use hcs_core::TorchStack;
use hcs_macros::memory;
use tch::{Kind, Tensor};

use super::ProjectionMethod;
use crate::error::KernelError;
use crate::torch_support::{OnDevice, dims, float, reflect_index};

/// Project planes with the chosen method (torch variant of
/// [`crate::projection::create_projection`]).
#[memory(torch, planes = one)]
pub fn create_projection(
    stack: TorchStack,
    #[param(default = ProjectionMethod::Max, doc = "max_projection | mean_projection | best_focus")]
    method: ProjectionMethod,
) -> Result<TorchStack, KernelError> {
    let (n, h, w) = dims(&stack)?;
    let device = stack.device();
    if n == 0 {
        return Tensor::f_zeros([1, h as i64, w as i64], (Kind::Float, device)).on(device);
    }
    let stack = float(&stack)?;
    match method {
        ProjectionMethod::Max => stack.f_amax([0i64].as_slice(), true).on(device),
        ProjectionMethod::Mean => stack
            .f_to_kind(Kind::Double)
            .and_then(|s| s.f_mean_dim([0i64].as_slice(), true, Kind::Double))
            .and_then(|s| s.f_to_kind(Kind::Float))
            .on(device),
        ProjectionMethod::BestFocus => {
            // Variance of the 4-neighbour Laplacian per plane, reflected borders, in f64.
            let d = stack.f_to_kind(Kind::Double).on(device)?;
            let rows = reflect_index(h, 1, device)?;
            let cols = reflect_index(w, 1, device)?;
            let p = d.f_index_select(1, &rows).and_then(|t| t.f_index_select(2, &cols)).on(device)?;
            let (h, w) = (h as i64, w as i64);
            let at = |dy: i64, dx: i64| p.narrow(1, 1 + dy, h).narrow(2, 1 + dx, w);
            let lap = at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1) - at(0, 0) * 4.0;
            let mean = lap.f_mean_dim([1i64, 2].as_slice(), false, Kind::Double).on(device)?;
            let mean_sq =
                lap.f_square().and_then(|l| l.f_mean_dim([1i64, 2].as_slice(), false, Kind::Double)).on(device)?;
            let scores: Vec<f64> = Vec::<f64>::try_from(&(mean_sq - mean.square())).on(device)?;
            // The last of equal maxima, like the ndarray variant's `max_by`.
            let best = scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
            stack.f_narrow(0, best as i64, 1).and_then(|t| t.f_contiguous()).on(device)
        }
    }
}
