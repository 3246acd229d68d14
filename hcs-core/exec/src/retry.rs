//! How a step's groups are retried after a device runs out of memory: all groups at once, then
//! the groups not done one at a time (a GPU step: every group again), then the plan's CPU
//! fallback (`StepCommon::cpu_fallback`) when the step's `gpu_policy` allows — never a variant
//! looked up here.

use hcs_plan::pipeline::GpuPolicy;

use crate::error::NoRetry;

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
) -> Result<Mode, NoRetry> {
    match mode {
        Mode::Parallel if groups > 1 => Ok(Mode::OneAtATime),
        _ if !on_gpu => Err(NoRetry::NoGpuToLeave),
        Mode::Parallel | Mode::OneAtATime => match (policy, has_cpu) {
            (GpuPolicy::Require, _) => Err(NoRetry::PolicyRequiresGpu),
            (_, false) => Err(NoRetry::NoCpuVariant),
            _ => Ok(Mode::Cpu),
        },
        Mode::Cpu => Err(NoRetry::CpuFallbackFailed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_goes_smaller_then_to_the_cpu_when_the_policy_allows() {
        use GpuPolicy::*;
        assert_eq!(after_out_of_memory(Mode::Parallel, 4, true, Prefer, true), Ok(Mode::OneAtATime));
        assert_eq!(after_out_of_memory(Mode::Parallel, 1, true, Prefer, true), Ok(Mode::Cpu));
        assert_eq!(after_out_of_memory(Mode::OneAtATime, 4, true, Prefer, true), Ok(Mode::Cpu));
        assert!(
            after_out_of_memory(Mode::OneAtATime, 4, true, Require, true)
                .is_err_and(|e| e.to_string().contains("require"))
        );
        assert!(
            after_out_of_memory(Mode::OneAtATime, 4, true, Prefer, false)
                .is_err_and(|e| e.to_string().contains("no ndarray variant"))
        );
        assert!(after_out_of_memory(Mode::Cpu, 4, true, Prefer, true).is_err());
        assert_eq!(after_out_of_memory(Mode::Parallel, 4, false, Prefer, false), Ok(Mode::OneAtATime));
        assert!(
            after_out_of_memory(Mode::OneAtATime, 4, false, Prefer, false)
                .is_err_and(|e| e.to_string().contains("no GPU"))
        );
    }
}
