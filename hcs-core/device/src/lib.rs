//! hcs-device: what GPUs this machine has, and moving stacks between memory types and planes.
//! The torch and cuda parts exist only with their features; without them every conversion but
//! identity is refused (the compiler never plans one: see `hcs_plan::compiler::ConversionTable`).
//!
//! The stack types themselves (and [`DeviceError`]) live in `hcs-core`, which kernels compile
//! against; this crate is what the executor and the CLI add on top.
#![deny(missing_docs)]

mod detect;

#[cfg(feature = "cuda")]
pub use detect::cuda_inventory;
#[cfg(feature = "torch")]
pub use detect::torch_inventory;
pub use detect::{built_in_memory_types, detect};
pub use hcs_core::{Conversion, DeviceError, GpuDevice, GpuInventory, MemoryType, Stack};

#[cfg(feature = "cuda")]
use hcs_core::cuda;
#[cfg(feature = "torch")]
use hcs_core::torch;

/// Convert a stack as the plan says. `device` is the GPU the plan assigned to this step and well
/// (`None`: the host; a torch stack then lives on the CPU).
#[cfg_attr(not(any(feature = "torch", feature = "cuda")), allow(unused_variables))]
pub fn convert(stack: Stack, conversion: Option<Conversion>, device: Option<u32>) -> Result<Stack, DeviceError> {
    let Some(c) = conversion else { return Ok(stack) };
    if c.from == c.to || stack.memory_type() == c.to {
        return Ok(stack);
    }
    #[allow(unreachable_patterns, unused_variables)]
    match (stack, c.to) {
        #[cfg(feature = "torch")]
        (Stack::Ndarray(a), MemoryType::Torch) => torch::from_ndarray(a, torch::device_of(device)).map(Stack::Torch),
        #[cfg(feature = "torch")]
        (Stack::Torch(t), MemoryType::Ndarray) => torch::to_ndarray(&t).map(Stack::Ndarray),
        #[cfg(feature = "cuda")]
        (Stack::Ndarray(a), MemoryType::Cuda) => {
            cuda::CudaStack::from_ndarray(&a, device.unwrap_or(0)).map(Stack::Cuda)
        }
        #[cfg(feature = "cuda")]
        (Stack::Cuda(s), MemoryType::Ndarray) => s.to_ndarray().map(Stack::Ndarray),
        #[cfg(all(feature = "cuda", feature = "torch"))]
        (Stack::Torch(t), MemoryType::Cuda) => cuda::CudaStack::from_torch(t).map(Stack::Cuda),
        #[cfg(all(feature = "cuda", feature = "torch"))]
        (Stack::Cuda(s), MemoryType::Torch) => s.to_torch().map(Stack::Torch),
        (stack, to) => Err(DeviceError::Unsupported(format!(
            "this build cannot convert {} → {to} (build with the `torch` / `cuda` features)",
            stack.memory_type()
        ))),
    }
}

/// A stack's planes as stacks of one plane `[1, Y, X]`, in place where the memory type allows (a
/// torch stack's planes are views of it), for keeping a step's output on its device.
pub fn split_planes(stack: Stack) -> Result<Vec<Stack>, DeviceError> {
    match stack {
        Stack::Ndarray(a) => {
            Ok(a.outer_iter().map(|p| Stack::Ndarray(p.to_owned().insert_axis(ndarray::Axis(0)))).collect())
        }
        #[cfg(feature = "torch")]
        Stack::Torch(t) => {
            let n = t.size().first().copied().unwrap_or(0);
            (0..n).map(|i| t.f_narrow(0, i, 1).map(Stack::Torch).map_err(|e| torch::error(t.device(), e))).collect()
        }
        #[cfg(feature = "cuda")]
        Stack::Cuda(c) => c.split_planes().map(|v| v.into_iter().map(Stack::Cuda).collect()),
    }
}

/// Planes of one memory type joined into one stack, on their device (no host round trip).
pub fn join_planes(planes: &[&Stack]) -> Result<Stack, DeviceError> {
    let Some(first) = planes.first() else { return Err(DeviceError::Unsupported("no planes to join".into())) };
    let mixed = || DeviceError::Unsupported("planes of one stack live in different memory types".into());
    match first {
        Stack::Ndarray(_) => {
            let views: Vec<_> = planes
                .iter()
                .map(|p| match p {
                    Stack::Ndarray(a) => Ok(a.view()),
                    #[allow(unreachable_patterns)]
                    _ => Err(mixed()),
                })
                .collect::<Result<_, _>>()?;
            ndarray::concatenate(ndarray::Axis(0), &views)
                .map(Stack::Ndarray)
                .map_err(|e| DeviceError::Unsupported(e.to_string()))
        }
        #[cfg(feature = "torch")]
        Stack::Torch(t) => {
            let tensors: Vec<&tch::Tensor> = planes
                .iter()
                .map(|p| match p {
                    Stack::Torch(t) => Ok(t),
                    _ => Err(mixed()),
                })
                .collect::<Result<_, _>>()?;
            tch::Tensor::f_cat(&tensors, 0).map(Stack::Torch).map_err(|e| torch::error(t.device(), e))
        }
        #[cfg(feature = "cuda")]
        Stack::Cuda(_) => {
            let stacks: Vec<&cuda::CudaStack> = planes
                .iter()
                .map(|p| match p {
                    Stack::Cuda(c) => Ok(c),
                    _ => Err(mixed()),
                })
                .collect::<Result<_, _>>()?;
            cuda::CudaStack::join(&stacks).map(Stack::Cuda)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn planes_split_and_join_back_to_the_same_stack() {
        let a = Array3::<f32>::from_shape_fn((3, 2, 4), |(p, y, x)| (p * 100 + y * 10 + x) as f32);
        let planes = split_planes(Stack::Ndarray(a.clone())).expect("split");
        assert_eq!(planes.len(), 3);
        let refs: Vec<&Stack> = planes.iter().rev().collect();
        match join_planes(&refs).expect("join") {
            Stack::Ndarray(b) => {
                assert_eq!(b.index_axis(ndarray::Axis(0), 0), a.index_axis(ndarray::Axis(0), 2));
                assert_eq!(b.dim(), (3, 2, 4));
            }
            #[allow(unreachable_patterns)]
            other => panic!("{:?}", other.memory_type()),
        }
        assert!(join_planes(&[]).is_err());
    }

    #[test]
    fn identity_needs_no_conversion_and_unknown_ones_are_refused_when_not_built() {
        let a = Array3::<f32>::zeros((1, 2, 2));
        let same = Conversion { from: MemoryType::Ndarray, to: MemoryType::Ndarray };
        assert!(matches!(convert(Stack::Ndarray(a.clone()), Some(same), None), Ok(Stack::Ndarray(_))));
        if !cfg!(feature = "cuda") {
            let to_cuda = Conversion { from: MemoryType::Ndarray, to: MemoryType::Cuda };
            let err = convert(Stack::Ndarray(a), Some(to_cuda), None).err().map(|e| e.to_string());
            assert_eq!(
                err.as_deref(),
                Some("this build cannot convert ndarray → cuda (build with the `torch` / `cuda` features)")
            );
        }
    }
}
