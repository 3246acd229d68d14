//! The GPUs a plan may use, as data: detected by `hcs-device`, passed to the compiler by its
//! caller (the compiler never probes hardware), or simulated in tests.

use serde::{Deserialize, Serialize};

/// One GPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// Device ordinal.
    pub ordinal: u32,
    /// Name, for messages.
    pub name: String,
    /// Memory in MiB (0: unknown, then the memory estimate does not cap its slots).
    pub memory_mib: u64,
    /// Compute capability `(major, minor)`, when the driver reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<(u32, u32)>,
}

/// The GPUs the compiler may assign.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInventory {
    /// The devices, in ordinal order.
    pub devices: Vec<GpuDevice>,
}

impl GpuInventory {
    /// No GPU.
    pub fn none() -> Self {
        Self::default()
    }

    /// `n` identical devices (tests, planning for another machine).
    pub fn simulated(n: u32) -> Self {
        let devices = (0..n)
            .map(|ordinal| GpuDevice {
                ordinal,
                name: format!("simulated GPU {ordinal}"),
                memory_mib: 80 * 1024,
                compute_capability: Some((9, 0)),
            })
            .collect();
        Self { devices }
    }

    /// Whether there is at least one device.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}
