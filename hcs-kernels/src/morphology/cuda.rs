//! The white top-hat on cuda stacks (feature `cuda`): block means (`block_mean`), disk min/max
//! (`disk_extreme`) and the replicated subtraction (`subtract_background`).

use cudarc::driver::{CudaSlice, PushKernelArg};
use hcs_core::cuda::CudaStack;
use hcs_macros::memory;

use super::chord_half_widths;
use crate::cuda_support::{device_error, function, grid, stream, upload, zeros};
use crate::error::KernelError;

/// Disk min (`is_max = 0`) or max of every plane of `data` `[n, h, w]`.
fn disk(
    stack: &CudaStack,
    data: &CudaSlice<f32>,
    [n, h, w]: [usize; 3],
    r: usize,
    is_max: i32,
) -> Result<CudaSlice<f32>, KernelError> {
    let half: Vec<i32> = chord_half_widths(r).into_iter().map(|v| v as i32).collect();
    let half = upload(stack, &half)?;
    let mut out = zeros::<f32>(stack, n * h * w)?;
    let f = function(stack, "disk_extreme")?;
    let s = stream(stack);
    let (hi, wi, ri) = (h as i32, w as i32, r as i32);
    let mut launch = s.launch_builder(&f);
    launch.arg(data).arg(&mut out).arg(&hi).arg(&wi).arg(&half).arg(&ri).arg(&is_max);
    // SAFETY: arguments match `disk_extreme`; `half` holds r + 1 widths.
    unsafe { launch.launch(grid(h * w, n)) }.map_err(|e| device_error(stack, e))?;
    Ok(out)
}

/// White top-hat background removal per plane (cuda variant of [`crate::morphology::tophat`]).
#[memory(cuda)]
#[hcs_macros::check(selem_radius <= image.height.max(image.width) && downsample_factor <= image.height.max(image.width), "the disk and the downsampling must fit in the image")]
pub fn tophat(
    stack: CudaStack,
    #[param(default = 50, doc = "disk radius in pixels", range = 1..=1000)] selem_radius: usize,
    #[param(default = 4, doc = "estimate the background at 1/f resolution (1 = exact)", range = 1..=64)]
    downsample_factor: usize,
) -> Result<CudaStack, KernelError> {
    let [n, h, w] = stack.shape();
    super::check_sizes((n, h, w), selem_radius, downsample_factor)?;
    if n * h * w == 0 {
        return Ok(stack);
    }
    let f = downsample_factor;
    let s = stream(&stack);
    let (small, small_shape, r) = if f == 1 {
        (s.clone_dtod(stack.data()).map_err(|e| device_error(&stack, e))?, [n, h, w], selem_radius)
    } else {
        let (dh, dw) = (h.div_ceil(f), w.div_ceil(f));
        let mut small = zeros::<f32>(&stack, n * dh * dw)?;
        let k = function(&stack, "block_mean")?;
        let (hi, wi, fi, dhi, dwi) = (h as i32, w as i32, f as i32, dh as i32, dw as i32);
        let mut launch = s.launch_builder(&k);
        launch.arg(stack.data()).arg(&mut small).arg(&hi).arg(&wi).arg(&fi).arg(&dhi).arg(&dwi);
        // SAFETY: arguments match `block_mean`; `small` holds n·dh·dw samples.
        unsafe { launch.launch(grid(dh * dw, n)) }.map_err(|e| device_error(&stack, e))?;
        (small, [n, dh, dw], (selem_radius as f64 / f as f64).round().max(1.0) as usize)
    };
    let eroded = disk(&stack, &small, small_shape, r, 0)?;
    let background = disk(&stack, &eroded, small_shape, r, 1)?;
    let mut data = s.clone_dtod(stack.data()).map_err(|e| device_error(&stack, e))?;
    let k = function(&stack, "subtract_background")?;
    let (hi, wi, fi, dhi, dwi) = (h as i32, w as i32, f as i32, small_shape[1] as i32, small_shape[2] as i32);
    let mut launch = s.launch_builder(&k);
    launch.arg(&mut data).arg(&background).arg(&hi).arg(&wi).arg(&fi).arg(&dhi).arg(&dwi);
    // SAFETY: arguments match `subtract_background`; `background` holds n·dh·dw samples.
    unsafe { launch.launch(grid(h * w, n)) }.map_err(|e| device_error(&stack, e))?;
    CudaStack::new(data, [n, h, w], s).map_err(KernelError::Device)
}
