//! torch stacks (`tch::Tensor`, `[N, Y, X]`, f32) and their conversions to and from host
//! `ndarray` stacks: each direction is one copy, straight between the ndarray's buffer and the
//! tensor's (host→device or device→host on a GPU, a memcpy on the CPU).

use std::sync::Once;

use ndarray::Array3;
use tch::{Device, Kind, Tensor};

use crate::DeviceError;

/// The `tch` crate this build uses, for code that names its types (tests, plugins).
pub use tch;

/// The tch device of a planned GPU ordinal (`None`: the CPU).
pub fn device_of(ordinal: Option<u32>) -> Device {
    match ordinal {
        Some(k) => {
            load_cuda_backend();
            Device::Cuda(k as usize)
        }
        None => Device::Cpu,
    }
}

/// The name used in messages: `cpu` or `cuda:k`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(k) => format!("cuda:{k}"),
        Device::Cpu => "cpu".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A tch error as a [`DeviceError`] (out-of-memory recognized).
pub fn error(device: Device, e: tch::TchError) -> DeviceError {
    DeviceError::from_message(device_name(device), e.to_string())
}

/// Rust links libtorch with `--as-needed`, which drops `libtorch_cuda.so` (nothing names its
/// symbols), and without it libtorch sees no GPU. Load it once, by name, before asking for CUDA.
pub fn load_cuda_backend() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for name in [c"libtorch_cuda.so", c"libtorch_hip.so"] {
            // SAFETY: dlopen with a valid C string; the handle is kept for the process's life.
            let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if !handle.is_null() {
                break;
            }
        }
    });
}

/// ndarray → torch on `device`, one copy.
pub fn from_ndarray(array: Array3<f32>, device: Device) -> Result<Tensor, DeviceError> {
    let (n, h, w) = array.dim();
    let array = array.as_standard_layout();
    let data = array.as_slice().ok_or_else(|| DeviceError::Unsupported("non-contiguous stack".into()))?;
    let dims = [n as i64, h as i64, w as i64];
    let strides = [(h * w) as i64, w as i64, 1];
    // SAFETY: `host` is a view of `data` (shape and strides describe exactly its n·h·w floats);
    // it is only read by the copy below, which completes (pageable memory) before `data` is dropped.
    let host = unsafe { Tensor::f_from_blob(data.as_ptr().cast(), &dims, &strides, Kind::Float, Device::Cpu) }
        .map_err(|e| error(device, e))?;
    let mut out = Tensor::f_empty(dims, (Kind::Float, device)).map_err(|e| error(device, e))?;
    out.f_copy_(&host).map_err(|e| error(device, e))?;
    Ok(out)
}

/// torch → ndarray, one copy (device→host straight into the new array's buffer).
pub fn to_ndarray(tensor: &Tensor) -> Result<Array3<f32>, DeviceError> {
    let device = tensor.device();
    let size = tensor.size();
    let [n, h, w] = size[..] else {
        return Err(DeviceError::Unsupported(format!("a torch stack must be [N, Y, X], got {size:?}")));
    };
    let (n, h, w) = (n as usize, h as usize, w as usize);
    let mut data = vec![0f32; n * h * w];
    let dims = [n as i64, h as i64, w as i64];
    let strides = [(h * w) as i64, w as i64, 1];
    {
        // SAFETY: `dst` views `data` exactly (n·h·w floats) and is dropped before `data` is moved.
        let mut dst =
            unsafe { Tensor::f_from_blob(data.as_mut_ptr().cast::<u8>(), &dims, &strides, Kind::Float, Device::Cpu) }
                .map_err(|e| error(device, e))?;
        dst.f_copy_(tensor).map_err(|e| error(device, e))?;
    }
    Array3::from_shape_vec((n, h, w), data).map_err(|e| DeviceError::Unsupported(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndarray_round_trips_through_a_cpu_tensor() {
        let a = Array3::<f32>::from_shape_fn((2, 3, 4), |(p, y, x)| (p * 100 + y * 10 + x) as f32 + 0.25);
        let t = from_ndarray(a.clone(), Device::Cpu).expect("to torch");
        assert_eq!(t.size(), [2, 3, 4]);
        assert_eq!(t.kind(), Kind::Float);
        assert_eq!(t.double_value(&[1, 2, 3]), 123.25);
        assert_eq!(to_ndarray(&t).expect("back"), a);
    }

    #[test]
    fn a_non_contiguous_ndarray_converts_by_value() {
        let a = Array3::<f32>::from_shape_fn((2, 3, 4), |(p, y, x)| (p * 100 + y * 10 + x) as f32);
        let swapped = a.clone().permuted_axes([0, 2, 1]);
        let t = from_ndarray(swapped.clone(), Device::Cpu).expect("to torch");
        assert_eq!(t.size(), [2, 4, 3]);
        assert_eq!(to_ndarray(&t).expect("back"), swapped);
    }

    #[test]
    fn a_tensor_that_is_not_a_stack_is_refused() {
        let t = Tensor::zeros([4, 4], (Kind::Float, Device::Cpu));
        let e = to_ndarray(&t).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("a torch stack must be [N, Y, X], got [4, 4]"));
    }
}
