//! Gaussian smoothing on torch stacks (feature `torch`).

use hcs_core::TorchStack;
use hcs_macros::memory;
use tch::Tensor;

use super::{check_sigma, kernel};
use crate::error::KernelError;
use crate::torch_support::{OnDevice, dims, float, pad_reflect};

/// Separable Gaussian per plane (torch variant of [`crate::gaussian::gaussian_filter`]):
/// SciPy's kernel (truncate 4), reflected borders, x then y.
#[memory(torch)]
#[hcs_macros::check(sigma <= image.height.max(image.width) as f64, "sigma must not exceed the larger side of the image")]
pub fn gaussian_filter(
    stack: TorchStack,
    #[param(default = 1.0, doc = "standard deviation in pixels (0: no blur)", range = 0.0..=256.0)] sigma: f64,
) -> Result<TorchStack, KernelError> {
    check_sigma("sigma", sigma)?;
    let (n, h, w) = dims(&stack)?;
    crate::checks::sigma_for("sigma", sigma, (h, w))?;
    if sigma <= 0.0 || n == 0 {
        return Ok(stack);
    }
    let device = stack.device();
    let k = kernel(sigma, 4.0);
    let r = k.len() / 2;
    let taps = Tensor::f_from_slice(&k).and_then(|t| t.f_to_device(device)).on(device)?;
    let x = float(&stack)?.f_view([n as i64, 1, h as i64, w as i64]).on(device)?;
    let along_x = pad_reflect(&x, 3, r)?
        .f_conv2d(&taps.f_view([1, 1, 1, k.len() as i64]).on(device)?, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
        .on(device)?;
    let along_y = pad_reflect(&along_x, 2, r)?
        .f_conv2d(&taps.f_view([1, 1, k.len() as i64, 1]).on(device)?, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
        .on(device)?;
    along_y.f_view([n as i64, h as i64, w as i64]).on(device)
}
