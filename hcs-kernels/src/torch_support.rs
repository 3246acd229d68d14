//! Shared plumbing of the torch variants (feature `torch`): error mapping, reflected indices and
//! stack shapes. The variants themselves live beside their ndarray twins, in each family's
//! `torch.rs` (e.g. [`crate::projection::torch`]), registered under the same names as the ndarray
//! functions: with a GPU assigned, the compiler picks them (`gpu_policy = prefer`), and the
//! executor hands them a `tch::Tensor` `[N, Y, X]` f32 already on the step's device. Each follows
//! its ndarray twin's definition (SciPy `reflect` borders, the same percentile interpolation, the
//! same blending); `tests/torch_equivalence.rs` checks them against the ndarray versions.

use tch::{Device, Kind, TchError, Tensor};

use crate::error::KernelError;

/// A tch result as a kernel result (device errors, out-of-memory included, keep their kind).
pub(crate) trait OnDevice<T> {
    /// Map the error to [`KernelError::Device`].
    fn on(self, device: Device) -> Result<T, KernelError>;
}

impl<T> OnDevice<T> for Result<T, TchError> {
    fn on(self, device: Device) -> Result<T, KernelError> {
        self.map_err(|e| KernelError::Device(hcs_core::torch::error(device, e)))
    }
}

/// Indices `-pad..n+pad` reflected into `0..n` (SciPy `reflect`), as an i64 tensor on `device`.
pub(crate) fn reflect_index(n: usize, pad: usize, device: Device) -> Result<Tensor, KernelError> {
    let idx: Vec<i64> =
        (0..n + 2 * pad).map(|i| crate::boundary::reflect(i as isize - pad as isize, n) as i64).collect();
    Tensor::f_from_slice(&idx).and_then(|t| t.f_to_device(device)).on(device)
}

/// `x` padded by `pad` reflected samples along `dim` (for `[N, 1, H, W]`: 2 = rows, 3 = columns).
pub(crate) fn pad_reflect(x: &Tensor, dim: i64, pad: usize) -> Result<Tensor, KernelError> {
    let device = x.device();
    let n = x.size()[dim as usize] as usize;
    x.f_index_select(dim, &reflect_index(n, pad, device)?).on(device)
}

/// `(planes, height, width)` of a stack tensor.
pub(crate) fn dims(stack: &Tensor) -> Result<(usize, usize, usize), KernelError> {
    match stack.size()[..] {
        [n, h, w] => Ok((n as usize, h as usize, w as usize)),
        ref other => Err(KernelError::BadInput(format!("a torch stack must be [N, Y, X], got {other:?}"))),
    }
}

/// The stack as contiguous f32.
pub(crate) fn float(stack: &Tensor) -> Result<Tensor, KernelError> {
    stack.f_to_kind(Kind::Float).and_then(|t| t.f_contiguous()).on(stack.device())
}
