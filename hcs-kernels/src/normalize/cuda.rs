//! Percentile normalization on cuda stacks (feature `cuda`): exact 16-bit histograms on the
//! device (`histogram_u16`), then the same interpolation and stretch (`stretch`) as the ndarray
//! variants.

use cudarc::driver::PushKernelArg;
use hcs_core::cuda::CudaStack;
use hcs_macros::memory;

use crate::cuda_support::{device_error, function, grid, stream, upload, zeros};
use crate::error::KernelError;

/// Percentiles per plane (`per_plane`) or of the whole stack: exact from 65 536-bin counts on the
/// device when every sample is an integer in 0..=65535 (16-bit images); otherwise the samples are
/// copied to the host and the ndarray percentiles are used.
fn percentiles(stack: &CudaStack, qs: &[f64], per_plane: bool) -> Result<Vec<[f32; 2]>, KernelError> {
    const BINS: usize = 1 << 16;
    let [n, h, w] = stack.shape();
    let px = h * w;
    let tables = if per_plane { n } else { 1 };
    let mut hist = zeros::<u32>(stack, tables * BINS)?;
    let mut not_u16 = zeros::<i32>(stack, 1)?;
    let f = function(stack, "histogram_u16")?;
    let s = stream(stack);
    let (plane_px, flag) = (px as i64, i32::from(per_plane));
    let mut launch = s.launch_builder(&f);
    launch.arg(stack.data()).arg(&mut hist).arg(&mut not_u16).arg(&plane_px).arg(&flag);
    // SAFETY: arguments match `histogram_u16`; `hist` holds one table per plane or one.
    unsafe { launch.launch(grid(px, n)) }.map_err(|e| device_error(stack, e))?;
    let not_u16 = s.clone_dtoh(&not_u16).map_err(|e| device_error(stack, e))?;
    let pair = |v: Vec<f32>| [v[0], v[1]];
    if not_u16.first().copied().unwrap_or(1) == 0 {
        let counts = s.clone_dtoh(&hist).map_err(|e| device_error(stack, e))?;
        let per = if per_plane { px } else { n * px };
        return Ok(counts.chunks(BINS).map(|c| pair(super::percentiles_from_counts(c, per, qs))).collect());
    }
    let host = s.clone_dtoh(stack.data()).map_err(|e| device_error(stack, e))?;
    let chunk = if per_plane { px.max(1) } else { (n * px).max(1) };
    Ok(host.chunks(chunk).map(|c| pair(super::percentiles(c, qs))).collect())
}

/// Stretch the stack by the percentiles `qs` of each plane (`per_plane`) or of the whole stack.
fn normalize(
    stack: CudaStack,
    qs: [f64; 2],
    t_min: f32,
    t_max: f32,
    per_plane: bool,
) -> Result<CudaStack, KernelError> {
    super::check_stretch(qs[0], qs[1], t_min, t_max)?;
    let [n, h, w] = stack.shape();
    if n * h * w == 0 {
        return Ok(stack);
    }
    let bounds: Vec<f32> = percentiles(&stack, &qs, per_plane)?.into_iter().flatten().collect();
    let bounds = upload(&stack, &bounds)?;
    let f = function(&stack, "stretch")?;
    let s = stream(&stack);
    let mut data = s.clone_dtod(stack.data()).map_err(|e| device_error(&stack, e))?;
    let (plane_px, flag) = ((h * w) as i64, i32::from(per_plane));
    let mut launch = s.launch_builder(&f);
    launch.arg(&mut data).arg(&bounds).arg(&plane_px).arg(&t_min).arg(&t_max).arg(&flag);
    // SAFETY: arguments match `stretch`; `bounds` holds a pair per plane or one pair.
    unsafe { launch.launch(grid(h * w, n)) }.map_err(|e| device_error(&stack, e))?;
    CudaStack::new(data, [n, h, w], s).map_err(KernelError::Device)
}

/// Stretch each plane by its own percentiles (cuda variant of
/// [`crate::normalize::percentile_normalize`]).
#[memory(cuda)]
#[hcs_macros::check(target_min < target_max, "target_min must be below target_max")]
#[hcs_macros::check(low_percentile < high_percentile, "the lower percentile must be below the upper one")]
pub fn percentile_normalize(
    stack: CudaStack,
    #[param(default = 1.0, doc = "lower percentile (0-100)", range = 0.0..=100.0)] low_percentile: f64,
    #[param(default = 99.0, doc = "upper percentile (0-100)", range = 0.0..=100.0)] high_percentile: f64,
    #[param(default = 0.0, doc = "value the lower percentile maps to", range = -1e30..=1e30, sample)] target_min: f32,
    #[param(default = 65535.0, doc = "value the upper percentile maps to (on an 8-bit plate, its default is 255)", range = -1e30..=1e30, sample)]
    target_max: f32,
) -> Result<CudaStack, KernelError> {
    normalize(stack, [low_percentile, high_percentile], target_min, target_max, true)
}

/// Stretch the whole stack by one pair of percentiles (cuda variant of
/// [`crate::normalize::stack_percentile_normalize`]).
#[memory(cuda)]
#[hcs_macros::check(target_min < target_max, "target_min must be below target_max")]
#[hcs_macros::check(low_percentile < high_percentile, "the lower percentile must be below the upper one")]
pub fn stack_percentile_normalize(
    stack: CudaStack,
    #[param(default = 1.0, doc = "lower percentile (0-100)", range = 0.0..=100.0)] low_percentile: f64,
    #[param(default = 99.0, doc = "upper percentile (0-100)", range = 0.0..=100.0)] high_percentile: f64,
    #[param(default = 0.0, doc = "value the lower percentile maps to", range = -1e30..=1e30, sample)] target_min: f32,
    #[param(default = 65535.0, doc = "value the upper percentile maps to (on an 8-bit plate, its default is 255)", range = -1e30..=1e30, sample)]
    target_max: f32,
) -> Result<CudaStack, KernelError> {
    normalize(stack, [low_percentile, high_percentile], target_min, target_max, false)
}
