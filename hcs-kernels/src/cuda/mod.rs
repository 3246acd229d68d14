//! cuda variants (feature `cuda`), registered under the same names as the ndarray functions:
//! projection, composite, percentile normalization and the top-hat, as CUDA C kernels
//! (`kernels.cu`, compiled by NVRTC once per device). Each follows its ndarray twin's
//! definition; `tests/cuda_equivalence.rs` checks them against the ndarray versions on a GPU.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};
use hcs_core::device::DeviceError;
use hcs_core::device::cuda::{CudaStack, module};
use hcs_macros::memory;

use crate::error::KernelError;
use crate::morphology::chord_half_widths;
use crate::projection::ProjectionMethod;

const SOURCE: &str = include_str!("kernels.cu");
const THREADS: u32 = 256;

fn device_error(stack: &CudaStack, e: impl std::fmt::Debug) -> KernelError {
    KernelError::Device(DeviceError::from_message(format!("cuda:{}", stack.ordinal()), format!("{e:?}")))
}

/// A kernel of `kernels.cu` on the stack's device.
fn function(stack: &CudaStack, name: &str) -> Result<CudaFunction, KernelError> {
    let m = module(stack.ordinal(), "hcs_kernels", SOURCE).map_err(KernelError::Device)?;
    m.load_function(name).map_err(|e| device_error(stack, e))
}

/// One thread per element of a plane, one grid row per plane.
fn grid(elements: usize, planes: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((elements as u32).div_ceil(THREADS).max(1), planes.max(1) as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn zeros<T: DeviceRepr + ValidAsZeroBits>(stack: &CudaStack, n: usize) -> Result<CudaSlice<T>, KernelError> {
    stack.stream().alloc_zeros::<T>(n.max(1)).map_err(|e| device_error(stack, e))
}

fn upload<T: DeviceRepr>(stack: &CudaStack, values: &[T]) -> Result<CudaSlice<T>, KernelError> {
    stack.stream().clone_htod(values).map_err(|e| device_error(stack, e))
}

fn stream(stack: &CudaStack) -> Arc<CudaStream> {
    Arc::clone(stack.stream())
}

/// Planes reduced to one by weights (`None`: plain sum) and a divisor, accumulated in f64.
fn reduce(stack: &CudaStack, weights: Option<&[f64]>, divisor: f64) -> Result<CudaStack, KernelError> {
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

/// Weighted average of the planes (cuda variant of [`crate::composite::create_composite`]).
#[memory(cuda, planes = one)]
pub fn create_composite(
    stack: CudaStack,
    #[param(default = None, doc = "per-plane weights; equal when omitted")] weights: Option<Vec<f32>>,
) -> Result<CudaStack, KernelError> {
    let n = stack.shape()[0];
    let raw: Vec<f64> = match weights.as_deref() {
        Some(ws) => (0..n).map(|i| ws.get(i).copied().map_or(0.0, f64::from)).collect(),
        None => vec![1.0; n],
    };
    let total: f64 = raw.iter().sum();
    let norm: Vec<f64> = if total > 0.0 { raw.iter().map(|w| w / total).collect() } else { vec![0.0; n] };
    reduce(&stack, Some(&norm), 1.0)
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
        return Ok(counts.chunks(BINS).map(|c| pair(crate::normalize::percentiles_from_counts(c, per, qs))).collect());
    }
    let host = s.clone_dtoh(stack.data()).map_err(|e| device_error(stack, e))?;
    let chunk = if per_plane { px.max(1) } else { (n * px).max(1) };
    Ok(host.chunks(chunk).map(|c| pair(crate::normalize::percentiles(c, qs))).collect())
}

fn normalize(
    stack: CudaStack,
    qs: [f64; 2],
    t_min: f32,
    t_max: f32,
    per_plane: bool,
) -> Result<CudaStack, KernelError> {
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
pub fn percentile_normalize(
    stack: CudaStack,
    #[param(default = 1.0, doc = "lower percentile (0-100)")] low_percentile: f64,
    #[param(default = 99.0, doc = "upper percentile (0-100)")] high_percentile: f64,
    #[param(default = 0.0, doc = "value the lower percentile maps to")] target_min: f32,
    #[param(default = 65535.0, doc = "value the upper percentile maps to")] target_max: f32,
) -> Result<CudaStack, KernelError> {
    normalize(stack, [low_percentile, high_percentile], target_min, target_max, true)
}

/// Stretch the whole stack by one pair of percentiles (cuda variant of
/// [`crate::normalize::stack_percentile_normalize`]).
#[memory(cuda)]
pub fn stack_percentile_normalize(
    stack: CudaStack,
    #[param(default = 1.0, doc = "lower percentile (0-100)")] low_percentile: f64,
    #[param(default = 99.0, doc = "upper percentile (0-100)")] high_percentile: f64,
    #[param(default = 0.0, doc = "value the lower percentile maps to")] target_min: f32,
    #[param(default = 65535.0, doc = "value the upper percentile maps to")] target_max: f32,
) -> Result<CudaStack, KernelError> {
    normalize(stack, [low_percentile, high_percentile], target_min, target_max, false)
}

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
pub fn tophat(
    stack: CudaStack,
    #[param(default = 50, doc = "disk radius in pixels")] selem_radius: usize,
    #[param(default = 4, doc = "estimate the background at 1/f resolution (1 = exact)")] downsample_factor: usize,
) -> Result<CudaStack, KernelError> {
    if downsample_factor == 0 {
        return Err(KernelError::BadParameter("downsample_factor must be at least 1".into()));
    }
    let [n, h, w] = stack.shape();
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
