//! Gaussian smoothing, separable, matching `scipy.ndimage.gaussian_filter(mode="reflect",
//! truncate=4.0)` per plane. Written here because no maintained crate offers an f32 Gaussian
//! with SciPy's boundary and truncation semantics on ndarray.
//!
//! The torch variant of [`gaussian_filter`](fn@gaussian_filter), registered under the same name, is in `torch.rs`
//! beside this file.

#[cfg(feature = "torch")]
pub mod torch;

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{Array2, ArrayView2, Axis};

use crate::error::KernelError;
use crate::separable::{along_x, along_y};

/// SciPy's 1-D Gaussian kernel (`_gaussian_kernel1d`) of derivative `order` (0 or 2), radius
/// `round(truncate·σ)`, in f64. Callers bound σ (see `checks::sigma_for`): the kernel
/// has `2·round(truncate·σ) + 1` taps.
pub fn derivative_kernel(sigma: f64, order: u8, truncate: f64) -> Vec<f64> {
    let radius = (truncate * sigma + 0.5) as isize;
    let s2 = sigma * sigma;
    // The centre tap is exactly 1 (also when σ² underflows, where −0.5/σ²·0 would be NaN).
    let phi: Vec<f64> =
        (-radius..=radius).map(|x| if x == 0 { 1.0 } else { (-0.5 / s2 * (x * x) as f64).exp() }).collect();
    let sum: f64 = phi.iter().sum();
    (-radius..=radius)
        .zip(&phi)
        .map(|(x, &p)| {
            let p = p / sum;
            match order {
                0 => p,
                // d²/dx² of the Gaussian: (x²/σ⁴ − 1/σ²)·φ(x)
                _ => ((x * x) as f64 / (s2 * s2) - 1.0 / s2) * p,
            }
        })
        .collect()
}

/// Normalized 1-D Gaussian weights with radius `round(truncate·σ)` (SciPy's rule), in f32.
pub fn kernel(sigma: f64, truncate: f64) -> Vec<f32> {
    derivative_kernel(sigma, 0, truncate).into_iter().map(|v| v as f32).collect()
}

/// Smooth one plane (σ in pixels, in y and x).
pub fn gaussian_2d(plane: ArrayView2<'_, f32>, sigma: f64) -> Array2<f32> {
    if sigma <= 0.0 {
        return plane.to_owned();
    }
    let k = kernel(sigma, 4.0);
    along_y(along_x(plane, &k).view(), &k)
}

/// A blur width must be a finite, non-negative number of pixels.
pub(crate) fn check_sigma(name: &str, value: f64) -> Result<(), KernelError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(KernelError::BadParameter(format!("{name} must be a non-negative number, got {value}")))
    }
}

/// Gaussian smoothing of each plane (`sigma` in pixels, in y and x).
#[memory(ndarray)]
#[hcs_macros::check(sigma <= image.height.max(image.width) as f64, "sigma must not exceed the larger side of the image")]
pub fn gaussian_filter(
    mut stack: NdarrayStack,
    #[param(default = 1.0, doc = "standard deviation in pixels (0: no blur)", range = 0.0..=256.0)] sigma: f64,
) -> Result<NdarrayStack, KernelError> {
    let (_, h, w) = stack.dim();
    crate::checks::sigma_for("sigma", sigma, (h, w))?;
    for mut plane in stack.axis_iter_mut(Axis(0)) {
        let smoothed = gaussian_2d(plane.view(), sigma);
        plane.assign(&smoothed);
    }
    Ok(stack)
}
