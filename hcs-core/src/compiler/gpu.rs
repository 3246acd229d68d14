//! Phase 5, GPU resource assignment: steps whose resolved calls use a GPU memory type get a
//! device for each well. Wells are dealt round-robin over the devices in well order (stable:
//! recompiling gives the same plan), and each assignment carries the per-device slot count the
//! executor enforces. Without a device, such a step is an error: its function has no CPU variant,
//! or the policy is `require`.

use serde::{Deserialize, Serialize};

use crate::pipeline::{GpuPolicy, Line, Pipeline, PipelineError, SourceMap, StepRef};

use super::contracts::Resolved;
use super::plan::GpuAssignment;

/// One GPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// Device ordinal.
    pub ordinal: u32,
    /// Name, for messages.
    pub name: String,
    /// Memory in MiB.
    pub memory_mib: u64,
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
            .map(|ordinal| GpuDevice { ordinal, name: format!("simulated GPU {ordinal}"), memory_mib: 80 * 1024 })
            .collect();
        Self { devices }
    }

    /// The GPUs of this machine usable by this build. A build without the `torch` or `cuda`
    /// feature has no GPU function to run (those memory types do not exist), so it has none.
    pub fn detect() -> Self {
        Self::none()
    }

    /// Whether there is at least one device.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

/// Check that every GPU step can get a device; errors name the step and the policy.
pub fn check(
    pipeline: &Pipeline,
    resolved: &[Option<Resolved>],
    policies: &[GpuPolicy],
    inventory: &GpuInventory,
    source: Option<&SourceMap>,
) -> Vec<PipelineError> {
    let mut errors = Vec::new();
    if !inventory.is_empty() {
        return errors;
    }
    for (i, r) in resolved.iter().enumerate() {
        let Some(r) = r.as_ref().filter(|r| r.uses_gpu) else { continue };
        let gpu_calls: Vec<String> = r
            .func
            .calls()
            .iter()
            .filter(|c| c.input_memory.is_gpu_capable())
            .map(|c| format!("`{}` ({})", c.function, c.input_memory))
            .collect();
        let message = match policies[i] {
            GpuPolicy::Require => {
                format!("gpu_policy is require and {} runs on a GPU, but no GPU was found", gpu_calls.join(", "))
            }
            _ => format!(
                "{} {} only GPU variants and no GPU was found (register an ndarray variant under the same name, or run where a GPU is)",
                gpu_calls.join(", "),
                if gpu_calls.len() == 1 { "has" } else { "have" }
            ),
        };
        errors.push(PipelineError::Gpu {
            at: Line(source.and_then(|s| s.step_line(i))),
            step: StepRef { index: i + 1, name: pipeline.steps[i].name.clone() },
            message,
        });
    }
    errors
}

/// The device of well number `well_index` (in plate order) for a GPU step.
pub fn assign(inventory: &GpuInventory, well_index: usize, slots: usize) -> Option<GpuAssignment> {
    let n = inventory.devices.len();
    (n > 0).then(|| GpuAssignment { device: inventory.devices[well_index % n].ordinal, slots })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wells_are_dealt_round_robin_over_the_devices() {
        let two = GpuInventory::simulated(2);
        let devices: Vec<u32> = (0..5).filter_map(|k| assign(&two, k, 3)).map(|a| a.device).collect();
        assert_eq!(devices, [0, 1, 0, 1, 0]);
        assert_eq!(assign(&two, 0, 3).map(|a| a.slots), Some(3));
        assert_eq!(assign(&GpuInventory::none(), 0, 3), None);
        assert!(GpuInventory::detect().is_empty() || cfg!(any(feature = "torch", feature = "cuda")));
    }
}
