//! Which GPUs and memory types this build can use on this machine.

#[cfg(any(feature = "cuda", feature = "torch"))]
use hcs_core::GpuDevice;
#[cfg(feature = "cuda")]
use hcs_core::cuda;
use hcs_core::{GpuInventory, MemoryType};

/// The GPUs this build can use on this machine: with `cuda`, the driver's devices (after
/// probing that libcuda loads at all); else with `torch`, libtorch's CUDA devices; else none.
pub fn detect() -> GpuInventory {
    #[cfg(feature = "cuda")]
    {
        let found = cuda_inventory();
        if !found.is_empty() {
            return found;
        }
    }
    #[cfg(feature = "torch")]
    {
        return torch_inventory();
    }
    #[allow(unreachable_code)]
    GpuInventory::none()
}

/// The memory types a build can hand to functions.
pub fn built_in_memory_types() -> Vec<MemoryType> {
    MemoryType::ALL
        .into_iter()
        .filter(|m| match m {
            MemoryType::Ndarray => true,
            MemoryType::Torch => cfg!(feature = "torch"),
            MemoryType::Cuda => cfg!(feature = "cuda"),
        })
        .collect()
}

#[cfg(feature = "cuda")]
/// The devices the driver reports, with memory and compute capability; none when libcuda is
/// absent or no device answers.
pub fn cuda_inventory() -> GpuInventory {
    if !cuda::culib_present() {
        return GpuInventory::none();
    }
    let Ok(count) = cudarc::driver::CudaContext::device_count() else { return GpuInventory::none() };
    let devices = (0..count.max(0) as usize)
        .filter_map(|ordinal| {
            let ctx = cuda::context(ordinal).ok()?;
            Some(GpuDevice {
                ordinal: ordinal as u32,
                name: ctx.name().unwrap_or_else(|_| format!("cuda:{ordinal}")),
                memory_mib: ctx.total_mem().map_or(0, |b| (b >> 20) as u64),
                compute_capability: ctx.compute_capability().ok().map(|(a, b)| (a as u32, b as u32)),
            })
        })
        .collect();
    GpuInventory { devices }
}

#[cfg(feature = "torch")]
/// The CUDA devices libtorch sees (memory unknown to libtorch: reported as 0 = not capped).
pub fn torch_inventory() -> GpuInventory {
    hcs_core::torch::load_cuda_backend();
    if !tch::Cuda::is_available() {
        return GpuInventory::none();
    }
    let devices = (0..tch::Cuda::device_count().max(0) as u32)
        .map(|ordinal| GpuDevice {
            ordinal,
            name: format!("torch cuda:{ordinal}"),
            memory_mib: 0,
            compute_capability: None,
        })
        .collect();
    GpuInventory { devices }
}
