//! The errors a device (or a move between memory types) can give. Defined here, beside the stack
//! types whose methods return them; `hcs-device` adds detection and conversions.

/// A failure on a device or while moving a stack to or from one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The device ran out of memory (the executor retries with smaller batches, then falls back
    /// or fails per the step's GPU policy).
    #[error("out of memory on {device}: {detail}")]
    OutOfMemory {
        /// The device, e.g. `cuda:0`.
        device: String,
        /// What the library said.
        detail: String,
    },
    /// Any other device or library failure.
    #[error("{device}: {detail}")]
    Failed {
        /// The device, e.g. `cuda:0` or `cpu`.
        device: String,
        /// What the library said.
        detail: String,
    },
    /// This build or this machine cannot do it.
    #[error("{0}")]
    Unsupported(String),
}

impl DeviceError {
    /// A library message, classified: messages that say "out of memory" become
    /// [`DeviceError::OutOfMemory`].
    pub fn from_message(device: impl Into<String>, detail: impl Into<String>) -> Self {
        let (device, detail) = (device.into(), detail.into());
        let lower = detail.to_ascii_lowercase();
        if lower.contains("out of memory") || lower.contains("cuda_error_out_of_memory") {
            DeviceError::OutOfMemory { device, detail: first_line(&detail) }
        } else {
            DeviceError::Failed { device, detail: first_line(&detail) }
        }
    }

    /// Whether this is an out-of-memory error.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, DeviceError::OutOfMemory { .. })
    }

    /// Whether `error` or any error in its source chain is a device out-of-memory error.
    pub fn chain_is_out_of_memory(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if e.downcast_ref::<DeviceError>().is_some_and(DeviceError::is_out_of_memory) {
                return true;
            }
            next = e.source();
        }
        false
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_messages_are_classified() {
        let e = DeviceError::from_message("cuda:0", "CUDA out of memory. Tried to allocate 2.00 GiB\nmore");
        assert!(e.is_out_of_memory());
        assert_eq!(e.to_string(), "out of memory on cuda:0: CUDA out of memory. Tried to allocate 2.00 GiB");
        assert!(!DeviceError::from_message("cpu", "shape mismatch").is_out_of_memory());
    }

    #[test]
    fn out_of_memory_is_found_anywhere_in_a_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("kernel failed")]
        struct Outer(#[source] DeviceError);
        let inner = DeviceError::OutOfMemory { device: "cuda:1".into(), detail: "x".into() };
        assert!(DeviceError::chain_is_out_of_memory(&Outer(inner)));
        let other = DeviceError::Failed { device: "cuda:1".into(), detail: "x".into() };
        assert!(!DeviceError::chain_is_out_of_memory(&Outer(other)));
    }
}
