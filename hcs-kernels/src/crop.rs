//! Cropping a sub-volume.

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::s;

use crate::error::KernelError;

/// The sub-volume `[start_z..start_z+depth, start_y..start_y+height, start_x..start_x+width]`.
#[memory(ndarray, planes = any, xy = any)]
#[hcs_macros::check(start_x < image.width && width <= image.width - start_x, "the columns kept must lie inside the image")]
#[hcs_macros::check(start_y < image.height && height <= image.height - start_y, "the rows kept must lie inside the image")]
#[hcs_macros::check(image.planes.is_none_or(|p| start_z < p && depth <= p - start_z), "the planes kept must lie inside the stack")]
#[hcs_macros::output_shape((height, width, Some(depth)))]
#[hcs_macros::pixel_origin((start_y as f64, start_x as f64))]
pub fn crop(
    stack: NdarrayStack,
    #[param(default = 0, doc = "first column")] start_x: usize,
    #[param(default = 0, doc = "first row")] start_y: usize,
    #[param(default = 0, doc = "first plane")] start_z: usize,
    #[param(doc = "columns kept", min = 1)] width: usize,
    #[param(doc = "rows kept", min = 1)] height: usize,
    #[param(default = 1, doc = "planes kept", min = 1)] depth: usize,
) -> Result<NdarrayStack, KernelError> {
    let (n, h, w) = stack.dim();
    let fits = |start: usize, len: usize, size: usize| len > 0 && start.checked_add(len).is_some_and(|end| end <= size);
    if !(fits(start_x, width, w) && fits(start_y, height, h) && fits(start_z, depth, n)) {
        return Err(KernelError::BadParameter(format!(
            "crop x {start_x}+{width}, y {start_y}+{height}, z {start_z}+{depth} does not fit a {n}×{h}×{w} stack"
        )));
    }
    Ok(stack.slice(s![start_z..start_z + depth, start_y..start_y + height, start_x..start_x + width]).to_owned())
}
