//! The white top-hat on torch stacks (feature `torch`): the same disk decomposition, reflected
//! borders and downsampled background as the ndarray variant.

use hcs_core::TorchStack;
use hcs_macros::memory;
use tch::{Device, Tensor};

use super::chord_half_widths;
use crate::error::KernelError;
use crate::torch_support::{OnDevice, dims, float, pad_reflect};

#[derive(Clone, Copy)]
enum Op {
    Erode,
    Dilate,
}

/// Grey-scale erosion or dilation of `x` `[N, 1, H, W]` by a disk of radius `r`, reflected
/// borders: for each chord half-width a running min/max along rows, then min/max over the rows
/// of the disk (the same decomposition as the ndarray variant).
fn disk_filter(x: &Tensor, r: usize, op: Op) -> Result<Tensor, KernelError> {
    let device = x.device();
    let size = x.size();
    let (h, w) = (size[2], size[3]);
    // max-pooling gives the running max; the running min is −max(−x).
    let signed = match op {
        Op::Erode => x.f_neg().on(device)?,
        Op::Dilate => x.shallow_clone(),
    };
    let padded_x = pad_reflect(&signed, 3, r)?;
    let mut out: Option<Tensor> = None;
    for (d, &half) in chord_half_widths(r).iter().enumerate() {
        let cols = padded_x.f_narrow(3, (r - half) as i64, w + 2 * half as i64).on(device)?;
        let run = cols.f_max_pool2d([1, 2 * half as i64 + 1], [1, 1], [0, 0], [1, 1], false).on(device)?;
        let run = pad_reflect(&run, 2, r)?;
        for dy in if d == 0 { vec![0i64] } else { vec![-(d as i64), d as i64] } {
            let rows = run.f_narrow(2, r as i64 + dy, h).on(device)?;
            out = Some(match out {
                None => rows.f_contiguous().on(device)?,
                Some(acc) => acc.f_maximum(&rows).on(device)?,
            });
        }
    }
    let out = out.ok_or_else(|| KernelError::BadInput("empty disk".into()))?;
    match op {
        Op::Erode => out.f_neg().on(device),
        Op::Dilate => Ok(out),
    }
}

/// Opening by a disk: erosion then dilation.
fn opening(x: &Tensor, r: usize) -> Result<Tensor, KernelError> {
    disk_filter(&disk_filter(x, r, Op::Erode)?, r, Op::Dilate)
}

/// White top-hat background removal per plane (torch variant of [`crate::morphology::tophat`]):
/// with `downsample_factor` f > 1 the background is the opening of the f×f block means by a disk
/// of `selem_radius / f`, replicated back and subtracted, clamped at 0.
#[memory(torch)]
#[hcs_macros::check(selem_radius <= image.height.max(image.width) && downsample_factor <= image.height.max(image.width), "the disk and the downsampling must fit in the image")]
pub fn tophat(
    stack: TorchStack,
    #[param(default = 50, doc = "disk radius in pixels", range = 1..=1000)] selem_radius: usize,
    #[param(default = 4, doc = "estimate the background at 1/f resolution (1 = exact)", range = 1..=64)]
    downsample_factor: usize,
) -> Result<TorchStack, KernelError> {
    let (n, h, w) = dims(&stack)?;
    super::check_sizes((n, h, w), selem_radius, downsample_factor)?;
    if n == 0 {
        return Ok(stack);
    }
    let device: Device = stack.device();
    let x = float(&stack)?.f_view([n as i64, 1, h as i64, w as i64]).on(device)?;
    let f = downsample_factor;
    let out = if f == 1 {
        x.f_sub(&opening(&x, selem_radius)?).on(device)?
    } else {
        let fi = f as i64;
        // Block means; the last blocks use the pixels there (ceil mode divides by the pixels inside).
        let small = x.f_avg_pool2d([fi, fi], [fi, fi], [0, 0], true, false, None).on(device)?;
        let radius = (selem_radius as f64 / f as f64).round().max(1.0) as usize;
        let background = opening(&small, radius)?;
        let rows: Vec<i64> = (0..h as i64).map(|y| y / fi).collect();
        let cols: Vec<i64> = (0..w as i64).map(|x| x / fi).collect();
        let rows = Tensor::f_from_slice(&rows).and_then(|t| t.f_to_device(device)).on(device)?;
        let cols = Tensor::f_from_slice(&cols).and_then(|t| t.f_to_device(device)).on(device)?;
        let full = background.f_index_select(2, &rows).and_then(|b| b.f_index_select(3, &cols)).on(device)?;
        x.f_sub(&full).and_then(|d| d.f_clamp_min(0.0)).on(device)?
    };
    out.f_view([n as i64, h as i64, w as i64]).on(device)
}
