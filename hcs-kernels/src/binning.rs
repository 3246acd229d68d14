//! Spatial binning: combine k×k (or k×k×k) blocks into one pixel.

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{Array3, s};
use rayon::prelude::*;

use crate::error::KernelError;

/// How a block of pixels becomes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinMethod {
    /// Mean of the block.
    Mean,
    /// Sum of the block.
    Sum,
    /// Maximum of the block.
    Max,
    /// Minimum of the block.
    Min,
}

hcs_core::choice_param!(BinMethod { BinMethod::Mean => "mean", BinMethod::Sum => "sum", BinMethod::Max => "max", BinMethod::Min => "min" });

/// How blocks are combined: the accumulator's start, the fold, and the final divisor.
struct Fold<F> {
    init: f64,
    combine: F,
    divisor: f64,
}

/// Bin with blocks of `kz` planes × `k` rows × `k` columns, one output row at a time (in parallel
/// over the rows of all output planes): fold the input rows into per-block accumulators (plane,
/// then row, then column within each block, as the block iterates in row-major order), then
/// divide.
fn bin_blocks<F: Fn(f64, f64) -> f64 + Sync>(
    stack: &ndarray::ArrayView3<'_, f32>,
    out: &mut Array3<f32>,
    (kz, k): (usize, usize),
    fold: Fold<F>,
) {
    let ow = out.dim().2;
    out.outer_iter_mut().into_par_iter().enumerate().for_each(|(op, mut o)| {
        o.outer_iter_mut().into_par_iter().enumerate().for_each_init(
            || vec![0.0f64; ow],
            |acc, (oy, mut orow)| {
                acc.fill(fold.init);
                for dz in 0..kz {
                    for r in 0..k {
                        let row = stack.slice(s![op * kz + dz, oy * k + r, ..]);
                        let row = row.as_slice().expect("standard layout");
                        for (a, block) in acc.iter_mut().zip(row[..ow * k].chunks_exact(k)) {
                            *a = block.iter().fold(*a, |a, &v| (fold.combine)(a, f64::from(v)));
                        }
                    }
                }
                orow.iter_mut().zip(acc.iter()).for_each(|(o, &a)| *o = (a / fold.divisor) as f32);
            },
        );
    });
}

/// Bin `stack` into `out` with `method`.
fn bin(stack: &NdarrayStack, out: &mut Array3<f32>, kz: usize, k: usize, method: BinMethod) {
    let stack = stack.as_standard_layout();
    let stack = stack.view();
    let cells = (kz * k * k) as f64;
    match method {
        BinMethod::Mean => bin_blocks(&stack, out, (kz, k), Fold { init: 0.0, combine: |a, v| a + v, divisor: cells }),
        BinMethod::Sum => bin_blocks(&stack, out, (kz, k), Fold { init: 0.0, combine: |a, v| a + v, divisor: 1.0 }),
        BinMethod::Max => {
            bin_blocks(&stack, out, (kz, k), Fold { init: f64::NEG_INFINITY, combine: f64::max, divisor: 1.0 })
        }
        BinMethod::Min => {
            bin_blocks(&stack, out, (kz, k), Fold { init: f64::INFINITY, combine: f64::min, divisor: 1.0 })
        }
    }
}

fn check(bin_size: usize, dims: &[usize]) -> Result<(), KernelError> {
    let smallest = dims.iter().copied().min().unwrap_or(0);
    if bin_size == 0 || bin_size > smallest {
        return Err(KernelError::BadParameter(format!(
            "bin_size {bin_size} does not fit the stack dimensions {dims:?} (accepted: 1..={smallest})"
        )));
    }
    Ok(())
}

/// Bin each plane in `bin_size`×`bin_size` blocks (trailing rows/columns that do not fill a
/// block are dropped).
#[memory(ndarray, xy = any)]
#[hcs_macros::check(bin_size <= image.height.min(image.width), "a bin must fit in the image")]
#[hcs_macros::output_shape((image.height / bin_size, image.width / bin_size, image.planes))]
#[hcs_macros::pixel_scale(bin_size as f64)]
// The first output pixel averages bin_size² input pixels: its centre is (bin_size − 1) / 2 in.
#[hcs_macros::pixel_origin(((bin_size as f64 - 1.0) / 2.0, (bin_size as f64 - 1.0) / 2.0))]
pub fn spatial_bin_2d(
    stack: NdarrayStack,
    #[param(default = 2, doc = "block edge in pixels", range = 1..=4096)] bin_size: usize,
    #[param(default = BinMethod::Mean, doc = "mean | sum | max | min")] method: BinMethod,
) -> Result<NdarrayStack, KernelError> {
    let (n, h, w) = stack.dim();
    check(bin_size, &[h, w])?;
    let k = bin_size;
    let (oh, ow) = (h / k, w / k);
    let mut out = Array3::<f32>::zeros((n, oh, ow));
    bin(&stack, &mut out, 1, k, method);
    Ok(out)
}

/// Bin the stack in `bin_size`³ blocks (planes, rows and columns that do not fill a block are
/// dropped).
#[memory(ndarray, planes = any, xy = any)]
#[hcs_macros::check(image.planes.is_none_or(|p| bin_size <= p), "a bin must fit in the stack's planes")]
#[hcs_macros::check(bin_size <= image.height.min(image.width), "a bin must fit in the image")]
#[hcs_macros::output_shape((image.height / bin_size, image.width / bin_size, image.planes.map(|p| p / bin_size)))]
#[hcs_macros::pixel_scale(bin_size as f64)]
// The first output pixel averages bin_size² input pixels: its centre is (bin_size − 1) / 2 in.
#[hcs_macros::pixel_origin(((bin_size as f64 - 1.0) / 2.0, (bin_size as f64 - 1.0) / 2.0))]
pub fn spatial_bin_3d(
    stack: NdarrayStack,
    #[param(default = 2, doc = "block edge in pixels and planes", range = 1..=4096)] bin_size: usize,
    #[param(default = BinMethod::Mean, doc = "mean | sum | max | min")] method: BinMethod,
) -> Result<NdarrayStack, KernelError> {
    let (n, h, w) = stack.dim();
    check(bin_size, &[n, h, w])?;
    let k = bin_size;
    let mut out = Array3::<f32>::zeros((n / k, h / k, w / k));
    bin(&stack, &mut out, k, k, method);
    Ok(out)
}
