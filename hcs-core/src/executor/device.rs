//! The executor's side of GPUs: per-device slots (how many wells a device runs at once, as the
//! plan says), how a step's groups are retried when a device runs out of memory, and the CPU
//! variants a step falls back to when its policy allows.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use crate::compiler::{ResolvedCall, ResolvedPattern};
use crate::memory::MemoryType;
use crate::pipeline::GpuPolicy;
use crate::registry::Registry;

/// Counting semaphores, one per device ordinal.
#[derive(Default)]
pub struct DeviceSlots {
    in_use: Mutex<HashMap<u32, usize>>,
    freed: Condvar,
}

/// A held slot; released on drop.
pub struct SlotGuard<'a> {
    slots: &'a DeviceSlots,
    device: u32,
}

impl DeviceSlots {
    /// Wait until device `device` runs fewer than `cap` wells, then take a slot.
    pub fn acquire(&self, device: u32, cap: usize) -> SlotGuard<'_> {
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        while in_use.get(&device).copied().unwrap_or(0) >= cap.max(1) {
            in_use = self.freed.wait(in_use).unwrap_or_else(|p| p.into_inner());
        }
        *in_use.entry(device).or_default() += 1;
        SlotGuard { slots: self, device }
    }

    /// Slots in use on `device` now.
    pub fn in_use(&self, device: u32) -> usize {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner()).get(&device).copied().unwrap_or(0)
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut in_use = self.slots.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = in_use.get_mut(&self.device) {
            *n = n.saturating_sub(1);
        }
        self.slots.freed.notify_all();
    }
}

/// How a step's groups run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every group at once, as the pool allows (the first try).
    Parallel,
    /// One group at a time: the smaller batch tried after the device ran out of memory.
    OneAtATime,
    /// The CPU variants, one group at a time on the pool: the fallback when the policy allows.
    Cpu,
}

/// What to do after running out of memory in `mode`: the next mode, or `Err` with why the step
/// cannot go on. `on_gpu`: the step was planned on a GPU (only then is there a CPU fallback).
pub fn after_out_of_memory(
    mode: Mode,
    groups: usize,
    on_gpu: bool,
    policy: GpuPolicy,
    has_cpu: bool,
) -> Result<Mode, String> {
    match mode {
        Mode::Parallel if groups > 1 => Ok(Mode::OneAtATime),
        _ if !on_gpu => Err("the step ran one group at a time and has no GPU to fall back from".into()),
        Mode::Parallel | Mode::OneAtATime => match (policy, has_cpu) {
            (GpuPolicy::Require, _) => Err("gpu_policy is require, so the step does not fall back to the CPU".into()),
            (_, false) => Err("some GPU function of the step has no ndarray variant to fall back to".into()),
            _ => Ok(Mode::Cpu),
        },
        Mode::Cpu => Err("out of memory on the CPU fallback".into()),
    }
}

/// The pattern with every GPU call replaced by its ndarray variant (same name and parameters,
/// no conversions), or `None` when some call has none.
pub fn cpu_pattern(pattern: &ResolvedPattern, registry: &Registry) -> Option<ResolvedPattern> {
    match pattern {
        ResolvedPattern::Call(call) => {
            if !call.input_memory.is_gpu_capable() && !call.output_memory.is_gpu_capable() {
                return Some(ResolvedPattern::Call(ResolvedCall { convert_input: None, ..call.clone() }));
            }
            let cpu = registry.get(&call.function, MemoryType::Ndarray)?;
            Some(ResolvedPattern::Call(ResolvedCall {
                function: call.function.clone(),
                input_memory: cpu.input_memory,
                output_memory: cpu.output_memory,
                params: call.params.clone(),
                convert_input: None,
            }))
        }
        ResolvedPattern::Chain { members } => Some(ResolvedPattern::Chain {
            members: members.iter().map(|m| cpu_pattern(m, registry)).collect::<Option<_>>()?,
        }),
        ResolvedPattern::Dict { by, entries } => Some(ResolvedPattern::Dict {
            by: *by,
            entries: entries
                .iter()
                .map(|(k, p)| Some((k.clone(), cpu_pattern(p, registry)?)))
                .collect::<Option<_>>()?,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn out_of_memory_goes_smaller_then_to_the_cpu_when_the_policy_allows() {
        use GpuPolicy::*;
        assert_eq!(after_out_of_memory(Mode::Parallel, 4, true, Prefer, true), Ok(Mode::OneAtATime));
        assert_eq!(after_out_of_memory(Mode::Parallel, 1, true, Prefer, true), Ok(Mode::Cpu));
        assert_eq!(after_out_of_memory(Mode::OneAtATime, 4, true, Prefer, true), Ok(Mode::Cpu));
        assert!(after_out_of_memory(Mode::OneAtATime, 4, true, Require, true).is_err_and(|e| e.contains("require")));
        assert!(
            after_out_of_memory(Mode::OneAtATime, 4, true, Prefer, false)
                .is_err_and(|e| e.contains("no ndarray variant"))
        );
        assert!(after_out_of_memory(Mode::Cpu, 4, true, Prefer, true).is_err());
        assert_eq!(after_out_of_memory(Mode::Parallel, 4, false, Prefer, false), Ok(Mode::OneAtATime));
        assert!(after_out_of_memory(Mode::OneAtATime, 4, false, Prefer, false).is_err_and(|e| e.contains("no GPU")));
    }

    #[test]
    fn a_device_never_runs_more_wells_than_its_slots() {
        let slots = Arc::new(DeviceSlots::default());
        let peak = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..6 {
                let (slots, peak) = (Arc::clone(&slots), Arc::clone(&peak));
                s.spawn(move || {
                    for _ in 0..20 {
                        let _held = slots.acquire(3, 2);
                        peak.fetch_max(slots.in_use(3), Ordering::SeqCst);
                        std::thread::yield_now();
                    }
                });
            }
        });
        assert!((1..=2).contains(&peak.load(Ordering::SeqCst)), "at most 2 at once");
        assert_eq!(slots.in_use(3), 0);
    }
}
