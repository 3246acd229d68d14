//! Phase 5, GPU resource assignment: steps whose resolved calls use a GPU memory type get a
//! device for each well. Wells are dealt round-robin over the devices in well order (stable:
//! recompiling gives the same plan), and each assignment carries the per-device slot count the
//! executor enforces. Without a device, such a step is an error: its function has no CPU variant,
//! or the policy is `require`.

use crate::pipeline::{GpuPolicy, Line, Pipeline, PipelineError, SourceMap, StepRef};

use super::plan::GpuAssignment;
use super::variants::Resolved;
use hcs_core::GpuInventory;

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

/// Steps under `gpu_policy = "require"` that run on the CPU because none of their functions has
/// a GPU variant in this build (a build without the `torch` / `cuda` features has none): not an
/// error — a CPU-only function is no GPU step — but not silent either.
pub fn require_note(
    pipeline: &Pipeline,
    resolved: &[Option<super::variants::Resolved>],
    policies: &[GpuPolicy],
) -> Option<String> {
    let on_cpu: Vec<String> = resolved
        .iter()
        .zip(policies)
        .enumerate()
        .filter(|(_, (r, p))| **p == GpuPolicy::Require && r.as_ref().is_some_and(|r| !r.uses_gpu))
        .map(|(i, _)| format!("{} `{}`", i + 1, pipeline.steps[i].name))
        .collect();
    match on_cpu.len() {
        0 => None,
        n => Some(format!(
            "gpu_policy is require, but {} {} no function with a GPU variant in this build (GPU memory types come with the `torch` and `cuda` features): {} on the CPU",
            if n == 1 { "step" } else { "steps" },
            on_cpu.join(", ") + if n == 1 { " has" } else { " have" },
            if n == 1 { "it runs" } else { "they run" }
        )),
    }
}

/// The device of well number `well_index` (in plate order) for a GPU step, and how many wells
/// that device may run at once: the configured `gpu_slots`, capped so that that many wells'
/// estimated peak memory (`well_bytes`, when known) fits in 90 % of the device's memory — at
/// least one (a well that does not fit is retried in smaller batches when the device says so).
pub fn assign(
    inventory: &GpuInventory,
    well_index: usize,
    slots: usize,
    well_bytes: Option<u64>,
) -> Option<GpuAssignment> {
    let n = inventory.devices.len();
    (n > 0).then(|| {
        let device = &inventory.devices[well_index % n];
        let fits = match well_bytes {
            Some(bytes) if bytes > 0 && device.memory_mib > 0 => {
                let usable = device.memory_mib.saturating_mul(1 << 20) / 10 * 9;
                (usable / bytes).max(1) as usize
            }
            _ => usize::MAX,
        };
        GpuAssignment {
            device: device.ordinal,
            slots: slots.min(fits).max(1),
            well_mib: well_bytes.map(|b| b.div_ceil(1 << 20)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wells_are_dealt_round_robin_over_the_devices() {
        let two = GpuInventory::simulated(2);
        let devices: Vec<u32> = (0..5).filter_map(|k| assign(&two, k, 3, None)).map(|a| a.device).collect();
        assert_eq!(devices, [0, 1, 0, 1, 0]);
        assert_eq!(assign(&two, 0, 3, None).map(|a| a.slots), Some(3));
        assert_eq!(assign(&GpuInventory::none(), 0, 3, None), None);
    }

    #[test]
    fn wells_are_balanced_over_four_devices() {
        let four = GpuInventory::simulated(4);
        let mut per_device = [0usize; 4];
        for k in 0..96 {
            if let Some(a) = assign(&four, k, 2, None) {
                per_device[a.device as usize] += 1;
            }
        }
        assert_eq!(per_device, [24, 24, 24, 24]);
    }

    #[test]
    fn concurrent_wells_per_device_are_capped_by_the_memory_estimate() {
        let mut small = GpuInventory::simulated(1);
        small.devices[0].memory_mib = 1000; // 900 MiB usable
        let mib = 1u64 << 20;
        let slots = |inv: &GpuInventory, bytes| assign(inv, 0, 8, Some(bytes)).map(|a| a.slots);
        assert_eq!(slots(&small, 100 * mib), Some(8), "9 fit, the configured 8 stand");
        assert_eq!(slots(&small, 300 * mib), Some(3));
        assert_eq!(slots(&small, 2000 * mib), Some(1), "one well at a time even when it may not fit");
        assert_eq!(assign(&small, 0, 8, Some(300 * mib)).and_then(|a| a.well_mib), Some(300));
        small.devices[0].memory_mib = 0; // unknown memory: no cap
        assert_eq!(slots(&small, 300 * mib), Some(8));
    }
}
