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
    let mut out = Array3::<f32>::zeros((n, oh, ow));
    // One output row at a time: gather its k input rows, reduce each k×k block.
    out.outer_iter_mut().into_par_iter().zip(stack.outer_iter()).for_each(|(mut o, plane)| {
        for (oy, mut orow) in o.outer_iter_mut().enumerate() {
            let rows = plane.slice(s![oy * k..(oy + 1) * k, ..ow * k]);
            for (ox, v) in orow.iter_mut().enumerate() {
                *v = method.reduce(rows.slice(s![.., ox * k..(ox + 1) * k]).iter().copied());
            }
        }
    });
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
