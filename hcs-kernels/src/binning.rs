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

impl BinMethod {
    fn reduce(self, values: impl Iterator<Item = f32>) -> f32 {
        let mut n = 0usize;
        let mut acc: f64 = match self {
            BinMethod::Mean | BinMethod::Sum => 0.0,
            BinMethod::Max => f64::NEG_INFINITY,
            BinMethod::Min => f64::INFINITY,
        };
        for v in values {
            let v = f64::from(v);
            n += 1;
            acc = match self {
                BinMethod::Mean | BinMethod::Sum => acc + v,
                BinMethod::Max => acc.max(v),
                BinMethod::Min => acc.min(v),
            };
        }
        (if self == BinMethod::Mean { acc / n.max(1) as f64 } else { acc }) as f32
    }
}

hcs_core::choice_param!(BinMethod { BinMethod::Mean => "mean", BinMethod::Sum => "sum", BinMethod::Max => "max", BinMethod::Min => "min" });

/// One output row at a time (in parallel over rows of all planes): fold the `k` input rows into
/// per-block accumulators, block by block in row-major order within each block, then divide.
fn bin_rows(
    stack: &ndarray::ArrayView3<'_, f32>,
    out: &mut Array3<f32>,
    k: usize,
    init: f64,
    combine: impl Fn(f64, f64) -> f64 + Sync,
    divisor: f64,
) {
    let ow = out.dim().2;
    out.outer_iter_mut().into_par_iter().zip(stack.outer_iter()).for_each(|(mut o, plane)| {
        o.outer_iter_mut().into_par_iter().enumerate().for_each_init(
            || vec![0.0f64; ow],
            |acc, (oy, mut orow)| {
                acc.fill(init);
                for r in 0..k {
                    let row = plane.row(oy * k + r);
                    let row = row.as_slice().expect("standard layout");
                    for (a, block) in acc.iter_mut().zip(row[..ow * k].chunks_exact(k)) {
                        *a = block.iter().fold(*a, |a, &v| combine(a, f64::from(v)));
                    }
                }
                orow.iter_mut().zip(acc.iter()).for_each(|(o, &a)| *o = (a / divisor) as f32);
            },
        );
    });
}

fn check(bin_size: usize, dims: &[usize]) -> Result<(), KernelError> {
    if bin_size == 0 || dims.iter().any(|&d| d < bin_size) {
        return Err(KernelError::BadParameter(format!(
            "bin_size {bin_size} does not fit the stack dimensions {dims:?}"
        )));
    }
    Ok(())
}

/// Bin each plane in `bin_size`×`bin_size` blocks (trailing rows/columns that do not fill a
/// block are dropped).
#[memory(ndarray)]
pub fn spatial_bin_2d(
    stack: NdarrayStack,
    #[param(default = 2, doc = "block edge in pixels")] bin_size: usize,
    #[param(default = BinMethod::Mean, doc = "mean | sum | max | min")] method: BinMethod,
) -> Result<NdarrayStack, KernelError> {
    let (n, h, w) = stack.dim();
    check(bin_size, &[h, w])?;
    let k = bin_size;
    let (oh, ow) = (h / k, w / k);
    let stack = stack.as_standard_layout();
    let mut out = Array3::<f32>::zeros((n, oh, ow));
    match method {
        BinMethod::Mean => bin_rows(&stack.view(), &mut out, k, 0.0, |a, v| a + v, (k * k) as f64),
        BinMethod::Sum => bin_rows(&stack.view(), &mut out, k, 0.0, |a, v| a + v, 1.0),
        BinMethod::Max => bin_rows(&stack.view(), &mut out, k, f64::NEG_INFINITY, f64::max, 1.0),
        BinMethod::Min => bin_rows(&stack.view(), &mut out, k, f64::INFINITY, f64::min, 1.0),
    }
    Ok(out)
}

/// Bin the stack in `bin_size`³ blocks (planes, rows and columns that do not fill a block are
/// dropped).
#[memory(ndarray)]
pub fn spatial_bin_3d(
    stack: NdarrayStack,
    #[param(default = 2, doc = "block edge in pixels and planes")] bin_size: usize,
    #[param(default = BinMethod::Mean, doc = "mean | sum | max | min")] method: BinMethod,
) -> Result<NdarrayStack, KernelError> {
    let (n, h, w) = stack.dim();
    check(bin_size, &[n, h, w])?;
    let k = bin_size;
    Ok(Array3::from_shape_fn((n / k, h / k, w / k), |(p, y, x)| {
        method.reduce(stack.slice(s![p * k..(p + 1) * k, y * k..(y + 1) * k, x * k..(x + 1) * k]).iter().copied())
    }))
}
