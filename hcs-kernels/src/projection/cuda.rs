//! Projections on cuda stacks (feature `cuda`): planes reduced to one by the `project_max`,
//! `weighted_planes` and `laplacian_moments` kernels.

use cudarc::driver::PushKernelArg;
use hcs_core::cuda::CudaStack;
use hcs_macros::memory;

use super::ProjectionMethod;
use crate::cuda_support::{device_error, function, grid, stream, upload, zeros};
use crate::error::KernelError;

/// Planes reduced to one by weights (`None`: plain sum) and a divisor, accumulated in f64: the
/// mean projection here and the composite's cuda variant.
pub(crate) fn reduce(stack: &CudaStack, weights: Option<&[f64]>, divisor: f64) -> Result<CudaStack, KernelError> {
    let [n, h, w] = stack.shape();
    let px = h * w;
    let mut out = zeros::<f32>(stack, px)?;
    let f = function(stack, "weighted_planes")?;
    let weights = weights.map(|ws| upload(stack, ws)).transpose()?;
    let s = stream(stack);
    let (planes, plane_px) = (n as i32, px as i64);
    let mut launch = s.launch_builder(&f);
    launch.arg(stack.data());
    let null: u64 = 0;
    match &weights {
        Some(ws) => launch.arg(ws),
        None => launch.arg(&null),
    };
    launch.arg(&mut out).arg(&planes).arg(&plane_px).arg(&divisor);
    // SAFETY: the arguments match `weighted_planes`' signature; every buffer holds what it reads.
    unsafe { launch.launch(grid(px, 1)) }.map_err(|e| device_error(stack, e))?;
    CudaStack::new(out, [1, h, w], s).map_err(KernelError::Device)
}

/// Project planes with the chosen method (cuda variant of
/// [`crate::projection::create_projection`]).
#[memory(cuda, planes = one)]
pub fn create_projection(
    stack: CudaStack,
    #[param(default = ProjectionMethod::Max, doc = "max_projection | mean_projection | best_focus")]
    method: ProjectionMethod,
) -> Result<CudaStack, KernelError> {
    let [n, h, w] = stack.shape();
    let px = h * w;
    match method {
        ProjectionMethod::Mean => reduce(&stack, None, n.max(1) as f64),
        ProjectionMethod::Max => {
            let mut out = zeros::<f32>(&stack, px)?;
            if n == 0 {
                return CudaStack::new(out, [1, h, w], stream(&stack)).map_err(KernelError::Device);
            }
            let f = function(&stack, "project_max")?;
            let s = stream(&stack);
            let (planes, plane_px) = (n as i32, px as i64);
            let mut launch = s.launch_builder(&f);
            launch.arg(stack.data()).arg(&mut out).arg(&planes).arg(&plane_px);
            // SAFETY: arguments match `project_max`; `out` holds one plane.
            unsafe { launch.launch(grid(px, 1)) }.map_err(|e| device_error(&stack, e))?;
            CudaStack::new(out, [1, h, w], s).map_err(KernelError::Device)
        }
        ProjectionMethod::BestFocus => {
            if n == 0 {
                return Ok(stack);
            }
            let mut sums = zeros::<f64>(&stack, 2 * n)?;
            let f = function(&stack, "laplacian_moments")?;
            let s = stream(&stack);
            let (hi, wi) = (h as i32, w as i32);
            let mut launch = s.launch_builder(&f);
            launch.arg(stack.data()).arg(&mut sums).arg(&hi).arg(&wi);
            // SAFETY: arguments match `laplacian_moments`; `sums` holds two values per plane.
            unsafe { launch.launch(grid(px, n)) }.map_err(|e| device_error(&stack, e))?;
            let sums = s.clone_dtoh(&sums).map_err(|e| device_error(&stack, e))?;
            let count = px.max(1) as f64;
            let scores: Vec<f64> = sums.chunks(2).map(|m| m[1] / count - (m[0] / count).powi(2)).collect();
            let best = scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
            let mut out = zeros::<f32>(&stack, px)?;
            s.memcpy_dtod(&stack.data().slice(best * px..(best + 1) * px), &mut out)
                .map_err(|e| device_error(&stack, e))?;
            CudaStack::new(out, [1, h, w], s).map_err(KernelError::Device)
        }
    }
}
