//! Errors of the processing functions (reported per well by the executor).

/// A kernel that cannot run on its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// A parameter value is out of range for this input.
    #[error("{0}")]
    BadParameter(String),
    /// The input stack cannot be processed (e.g. empty).
    #[error("{0}")]
    BadInput(String),
    /// The device (GPU, libtorch, CUDA) failed; out-of-memory is retried by the executor.
    #[error("{0}")]
    Device(#[source] hcs_core::DeviceError),
}
