//! The memory types a function's stack can live in.

use std::fmt;

/// Where a function's stack lives and which library it is expressed in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryType {
    /// `ndarray::Array3<f32>` in host memory.
    #[default]
    Ndarray,
    /// `tch::Tensor` of shape `[N, Y, X]`, f32, on the device the plan assigns (feature `torch`).
    Torch,
    /// A cudarc device buffer with its shape and stream (feature `cuda`).
    Cuda,
}

impl MemoryType {
    /// Every memory type, in a stable order.
    pub const ALL: [MemoryType; 3] = [MemoryType::Ndarray, MemoryType::Torch, MemoryType::Cuda];

    /// The name used in attributes and pipeline files.
    pub const fn name(self) -> &'static str {
        match self {
            MemoryType::Ndarray => "ndarray",
            MemoryType::Torch => "torch",
            MemoryType::Cuda => "cuda",
        }
    }

    /// Whether this is the host type.
    pub fn is_ndarray(&self) -> bool {
        *self == MemoryType::Ndarray
    }

    /// Whether the stack lives on a GPU (or may: torch can run on CPU too).
    pub const fn is_gpu_capable(self) -> bool {
        !matches!(self, MemoryType::Ndarray)
    }
}

impl fmt::Display for MemoryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
