//! Unsharp masking.

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{Axis, Zip};

use crate::error::KernelError;
use crate::gaussian::{check_sigma, gaussian_2d};

/// Unsharp mask per plane: `plane + amount·(plane − gaussian(plane, radius))`, clipped to
/// `[0, 65535]` (as `skimage.filters.unsharp_mask(preserve_range=True)` followed by a clip).
#[memory(ndarray)]
#[hcs_macros::check(radius <= image.height.max(image.width) as f64, "radius must not exceed the larger side of the image")]
pub fn sharpen(
    mut stack: NdarrayStack,
    #[param(default = 1.0, doc = "Gaussian sigma of the blur, in pixels", range = 0.01..=256.0)] radius: f64,
    #[param(default = 1.0, doc = "strength", range = 0.0..=100.0)] amount: f32,
) -> Result<NdarrayStack, KernelError> {
    check_sigma("radius", radius)?;
    let (_, h, w) = stack.dim();
    crate::checks::sigma_for("radius", radius, (h, w))?;
    crate::checks::finite("amount", f64::from(amount))?;
    for mut plane in stack.axis_iter_mut(Axis(0)) {
        let blurred = gaussian_2d(plane.view(), radius);
        Zip::from(&mut plane).and(&blurred).par_for_each(|v, &b| *v = (*v + (*v - b) * amount).clamp(0.0, 65535.0));
    }
    Ok(stack)
}
