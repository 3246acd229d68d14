//! Shared plumbing of the cuda variants (feature `cuda`): the CUDA C kernels (`kernels.cu`,
//! compiled by NVRTC once per device, one module for all families) and launch helpers. The
//! variants themselves live beside their ndarray twins, in each family's `cuda.rs` (e.g.
//! [`crate::projection::cuda`]), registered under the same names as the ndarray functions: each
//! follows its ndarray twin's definition; `tests/cuda_equivalence.rs` checks them against the
//! ndarray versions on a GPU.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, ValidAsZeroBits};
use hcs_core::DeviceError;
use hcs_core::cuda::{CudaStack, module};

use crate::error::KernelError;

/// The CUDA C source of every kernel.
const SOURCE: &str = include_str!("kernels.cu");
/// Threads per block.
const THREADS: u32 = 256;

/// A driver error as a kernel error on the stack's device.
pub(crate) fn device_error(stack: &CudaStack, e: impl std::fmt::Debug) -> KernelError {
    KernelError::Device(DeviceError::from_message(format!("cuda:{}", stack.ordinal()), format!("{e:?}")))
}

/// A kernel of `kernels.cu` on the stack's device.
pub(crate) fn function(stack: &CudaStack, name: &str) -> Result<CudaFunction, KernelError> {
    let m = module(stack.ordinal(), "hcs_kernels", SOURCE).map_err(KernelError::Device)?;
    m.load_function(name).map_err(|e| device_error(stack, e))
}

/// One thread per element of a plane, one grid row per plane.
pub(crate) fn grid(elements: usize, planes: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((elements as u32).div_ceil(THREADS).max(1), planes.max(1) as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `n` zeroed elements (at least one) on the stack's device.
pub(crate) fn zeros<T: DeviceRepr + ValidAsZeroBits>(stack: &CudaStack, n: usize) -> Result<CudaSlice<T>, KernelError> {
    stack.stream().alloc_zeros::<T>(n.max(1)).map_err(|e| device_error(stack, e))
}

/// `values` copied to the stack's device.
pub(crate) fn upload<T: DeviceRepr>(stack: &CudaStack, values: &[T]) -> Result<CudaSlice<T>, KernelError> {
    stack.stream().clone_htod(values).map_err(|e| device_error(stack, e))
}

/// The stack's stream, shared.
pub(crate) fn stream(stack: &CudaStack) -> Arc<CudaStream> {
    Arc::clone(stack.stream())
}
