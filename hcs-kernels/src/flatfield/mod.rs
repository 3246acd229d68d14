//! BaSiC-style flatfield correction: the illumination pattern shared by a set of images is the
//! low-rank part of a robust PCA (low rank + sparse) of the images, the sparse part being the
//! samples' own structure.
//!
//! The images are block-averaged to at most `working_size` pixels per side, decomposed
//! ([`rpca`]), and the mean of the low-rank part over the images is the background `B`; the
//! flatfield is `F = B / mean(B)`, bilinearly upsampled. `divide` returns `I / F` (multiplicative
//! shading, mean intensity kept), `subtract` returns `I − (B − mean(B))` (additive background).
//! `F` is floored at 5 % so that dark corners are not amplified without bound.
//!
//! Stacks with values below zero (an earlier step moved them there) are corrected above their
//! dark level (just under the minimum), which is put back afterwards; a constant stack is
//! returned as it is (it has no shading to remove). When the decomposition puts everything in
//! the sparse part (no shared background at that `lambda_sparse`), the images are returned
//! uncorrected and a warning says so.
//!
//! Unlike the peer's version, the correction uses one field shared by all images, not each
//! image's own low-rank approximation (which, with no more images than the rank, divides every
//! image by itself and returns a constant).

mod eigen;
mod rpca;

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

pub use eigen::symmetric_eigen;
pub use rpca::{Rpca, RpcaSettings, rpca};

use crate::error::KernelError;

/// How the estimated field is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorrectionMode {
    /// `I / F`: multiplicative shading (vignetting).
    Divide,
    /// `I − (B − mean B)`: additive background.
    Subtract,
}

hcs_core::choice_param!(CorrectionMode { CorrectionMode::Divide => "divide", CorrectionMode::Subtract => "subtract" });

/// Lowest flatfield value used for division, relative to its mean.
const FLATFIELD_FLOOR: f64 = 0.05;

/// The estimated illumination of a stack.
#[derive(Clone, Debug)]
pub struct Illumination {
    /// Background `B` at working resolution (mean of the low-rank part).
    pub background: Array2<f64>,
    /// Block size of the working resolution.
    pub factor: usize,
    /// How the decomposition ended.
    pub iterations: usize,
    /// Its final relative residual.
    pub residual: f64,
}

/// Block means of `plane` over `f × f` blocks (partial blocks at the far edges).
fn block_mean(plane: ArrayView2<'_, f32>, f: usize, offset: f64) -> Array2<f64> {
    let (h, w) = plane.dim();
    let (hs, ws) = (h.div_ceil(f), w.div_ceil(f));
    let mut sum = Array2::<f64>::zeros((hs, ws));
    let mut count = Array2::<f64>::zeros((hs, ws));
    for ((y, x), &v) in plane.indexed_iter() {
        sum[(y / f, x / f)] += f64::from(v) - offset;
        count[(y / f, x / f)] += 1.0;
    }
    sum / count
}

/// Estimate the shared background of the planes of `stack`.
pub fn estimate_illumination(
    stack: &NdarrayStack,
    working_size: usize,
    settings: RpcaSettings,
) -> Result<Illumination, KernelError> {
    estimate_above(stack, working_size, settings, 0.0)
}

/// Estimate the shared background of `stack − offset` (the stack itself is not changed).
fn estimate_above(
    stack: &NdarrayStack,
    working_size: usize,
    settings: RpcaSettings,
    offset: f64,
) -> Result<Illumination, KernelError> {
    let (n, h, w) = stack.dim();
    if n < 2 {
        return Err(KernelError::BadInput(format!(
            "flatfield estimation needs at least 2 images sharing the illumination, got {n}"
        )));
    }
    let factor = h.max(w).div_ceil(working_size.max(1)).max(1);
    let small: Vec<Array2<f64>> =
        stack.axis_iter(Axis(0)).into_par_iter().map(|p| block_mean(p, factor, offset)).collect();
    let (hs, ws) = small[0].dim();
    let mut d = Array2::<f64>::zeros((n, hs * ws));
    for (mut row, img) in d.axis_iter_mut(Axis(0)).zip(&small) {
        row.iter_mut().zip(img.iter()).for_each(|(r, &v)| *r = v);
    }
    let r = rpca(d.view(), settings);
    let background = r
        .low_rank
        .mean_axis(Axis(0))
        .ok_or_else(|| KernelError::BadInput("empty stack".into()))?
        .into_shape_with_order((hs, ws))
        .map_err(|e| KernelError::BadInput(e.to_string()))?;
    Ok(Illumination { background, factor, iterations: r.iterations, residual: r.residual })
}

/// Bilinear value of `small` at full-resolution pixel `(y, x)` (block centres as sample points).
fn upsample_at(small: &Array2<f64>, f: usize, y: usize, x: usize) -> f64 {
    let (hs, ws) = small.dim();
    let coord = |i: usize, n: usize| ((i as f64 + 0.5) / f as f64 - 0.5).clamp(0.0, (n - 1) as f64);
    let (sy, sx) = (coord(y, hs), coord(x, ws));
    let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(hs - 1), (x0 + 1).min(ws - 1));
    let (fy, fx) = (sy - y0 as f64, sx - x0 as f64);
    let top = small[(y0, x0)] * (1.0 - fx) + small[(y0, x1)] * fx;
    let bottom = small[(y1, x0)] * (1.0 - fx) + small[(y1, x1)] * fx;
    top * (1.0 - fy) + bottom * fy
}

/// The full-resolution flatfield `F = B / mean(B)` (floored at 5 %).
pub fn flatfield(illum: &Illumination, h: usize, w: usize) -> Result<Array2<f64>, KernelError> {
    let mean = illum.background.mean().unwrap_or(0.0);
    if !(mean.is_finite() && mean > 0.0) {
        return Err(KernelError::BadInput(format!(
            "the estimated illumination has mean {mean}; flatfield correction needs positive intensities"
        )));
    }
    Ok(Array2::from_shape_fn((h, w), |(y, x)| {
        (upsample_at(&illum.background, illum.factor, y, x) / mean).max(FLATFIELD_FLOOR)
    }))
}

/// Most iterations of the decomposition (each costs a Gram matrix and a thresholding of the
/// whole working-resolution stack).
const MAX_ITERS: usize = 100_000;

/// Largest rank kept (the Gram matrix has as many eigenvectors as images; more never helps).
const MAX_RANK: usize = 1000;

/// Smallest stopping tolerance: a relative residual below ~1e-15 is below f64 resolution, so
/// the decomposition would never stop before `max_iters`.
const MIN_TOL: f64 = 1e-15;

/// Bounds on the work [`basic_flatfield_correction`] does, whatever the parameter values.
fn check_bounds(max_iters: usize, rank: usize, tol: f64) -> Result<(), KernelError> {
    crate::checks::int_in("max_iters", max_iters, 1, MAX_ITERS, "")?;
    crate::checks::int_in("rank", rank, 1, MAX_RANK, "")?;
    crate::checks::float_in("tol", tol, MIN_TOL, 1.0)
}

/// Remove the illumination pattern shared by the planes (BaSiC-style estimate; see the module
/// documentation). Give it many images of one channel (e.g. all sites of a well): at least 2,
/// ideally 10 or more.
#[memory(ndarray)]
#[hcs_macros::check(image.planes.is_none_or(|p| p >= 2), "the illumination is estimated from at least 2 images: stack sites or timepoints with variable_components")]
#[hcs_macros::peak_memory((rank as f64 + 4.0) * working_size as f64 * working_size as f64 * image.planes.unwrap_or(1) as f64 * 8.0 + 3.0 * image.planes.unwrap_or(1) as f64 * image.height as f64 * image.width as f64 * 4.0)]
#[allow(clippy::too_many_arguments)]
pub fn basic_flatfield_correction(
    mut stack: NdarrayStack,
    #[param(default = 500, doc = "iterations of the decomposition at most", range = 1..=100000)] max_iters: usize,
    #[param(default = 0.5, doc = "weight of the sparse part, × the standard 1/√max(images, pixels)", range = 0.0..=100.0, nonzero)]
    lambda_sparse: f64,
    #[param(default = 3, doc = "largest rank of the illumination estimate", range = 1..=16)] rank: usize,
    #[param(default = 1e-6, doc = "relative residual at which the decomposition stops", range = 1e-12..=1.0)] tol: f64,
    #[param(default = CorrectionMode::Divide, doc = "divide | subtract")] correction_mode: CorrectionMode,
    #[param(default = 64, doc = "largest side (pixels) of the images the field is estimated on", range = 8..=4096)]
    working_size: usize,
) -> Result<NdarrayStack, KernelError> {
    if !(lambda_sparse.is_finite() && lambda_sparse > 0.0) || rank == 0 || working_size < 2 {
        return Err(KernelError::BadParameter(format!(
            "need lambda_sparse > 0, rank ≥ 1 and working_size ≥ 2, got {lambda_sparse}, {rank}, {working_size}"
        )));
    }
    if !(tol.is_finite() && tol > 0.0) {
        return Err(KernelError::BadParameter(format!("tol must be a positive number, got {tol}")));
    }
    check_bounds(max_iters, rank, tol)?;
    if stack.dim().0 >= 2 && is_constant(&stack) {
        // A stack of identical constant images carries no illumination pattern: the exact
        // correction is the identity (and the estimate below would divide by zero).
        return Ok(stack);
    }
    let settings = RpcaSettings { lambda_scale: lambda_sparse, max_rank: rank, max_iters, tol };
    let offset = dark_offset(&stack);
    let illum = estimate_above(&stack, working_size, settings, offset)?;
    let mean_b = illum.background.mean().unwrap_or(0.0);
    if !(mean_b.is_finite() && mean_b > 0.0) {
        // Every bit of the images went to the sparse part: they share no illumination pattern
        // the decomposition can see at this `lambda_sparse` (typical of a few images of bright
        // cells on a dark background). Dividing by such an estimate would be meaningless.
        tracing::warn!(
            "basic_flatfield_correction: the decomposition found no illumination shared by the {} images \
             (all of it is in the sparse part at lambda_sparse = {lambda_sparse}); the images are returned \
             uncorrected. Give it more images, or raise lambda_sparse.",
            stack.dim().0
        );
        return Ok(stack);
    }
    let (_, h, w) = stack.dim();
    let field = flatfield(&illum, h, w)?;
    stack.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut plane| {
        plane.zip_mut_with(&field, |v, &f| {
            *v = match correction_mode {
                CorrectionMode::Divide => ((f64::from(*v) - offset) / f + offset) as f32,
                CorrectionMode::Subtract => (f64::from(*v) - (f * mean_b - mean_b)) as f32,
            }
        });
    });
    Ok(stack)
}

/// Whether every value of `stack` is the same.
fn is_constant(stack: &NdarrayStack) -> bool {
    let first = stack.iter().next().copied().unwrap_or(0.0);
    stack.iter().all(|&v| v == first)
}

/// The dark level taken out before the estimate and put back after the correction.
///
/// The multiplicative model `I = S · F` needs positive intensities. Raw camera data always has
/// them (at worst a pixel at 0), so for such stacks the offset is 0 and nothing changes. A stack
/// that an earlier step moved below zero (a normalization to a range that starts below zero, a
/// background subtraction) is treated as `I = S · F + D` with the dark level `D` just under its
/// minimum (by 0.1 % of its range, whatever its scale): the field is estimated and divided out
/// of `I − D`, and `D` is added back. The additive (`subtract`) model works on any sign; its
/// field is estimated above the same level so that the same floor applies.
fn dark_offset(stack: &NdarrayStack) -> f64 {
    let (min, max) = stack
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(f64::from(v)), hi.max(f64::from(v))));
    if min.is_finite() && max.is_finite() && min < 0.0 { min - 1e-3 * (max - min).max(f64::MIN_POSITIVE) } else { 0.0 }
}
