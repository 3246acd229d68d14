//! The CPU fallback of a GPU step, decided at plan time: the step's pattern with every GPU call
//! replaced by its ndarray variant (same name, same parameters). The executor switches to it
//! after a device runs out of memory, when the step's `gpu_policy` allows; it never consults the
//! registry for it.

use hcs_core::registry::Registry;
use hcs_core::stack::MemoryType;

use super::plan::{ResolvedCall, ResolvedPattern};

/// Whether any call of `pattern` runs in a GPU-capable memory type.
pub fn uses_gpu(pattern: &ResolvedPattern) -> bool {
    match pattern {
        ResolvedPattern::Call(call) => call.input_memory.is_gpu_capable() || call.output_memory.is_gpu_capable(),
        ResolvedPattern::Chain { members } => members.iter().any(uses_gpu),
        ResolvedPattern::Dict { entries, .. } => entries.iter().any(|(_, p)| uses_gpu(p)),
    }
}

/// The pattern with every GPU call replaced by its ndarray variant (same name and parameters,
/// no conversions), or `None` when some call has none.
pub fn cpu_fallback(pattern: &ResolvedPattern, registry: &Registry) -> Option<ResolvedPattern> {
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
            members: members.iter().map(|m| cpu_fallback(m, registry)).collect::<Option<_>>()?,
        }),
        ResolvedPattern::Dict { by, entries } => Some(ResolvedPattern::Dict {
            by: *by,
            entries: entries
                .iter()
                .map(|(k, p)| Some((k.clone(), cpu_fallback(p, registry)?)))
                .collect::<Option<_>>()?,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcs_core::params::ParamMap;

    fn call(function: &str, memory: MemoryType) -> ResolvedPattern {
        ResolvedPattern::Call(ResolvedCall {
            function: function.into(),
            input_memory: memory,
            output_memory: memory,
            params: ParamMap::default(),
            convert_input: None,
        })
    }

    #[test]
    fn a_host_pattern_uses_no_gpu_and_a_missing_twin_means_no_fallback() {
        assert!(!uses_gpu(&call("anything", MemoryType::Ndarray)));
        let gpu =
            ResolvedPattern::Chain { members: vec![call("a", MemoryType::Ndarray), call("b", MemoryType::Torch)] };
        assert!(uses_gpu(&gpu));
        // No function named `b` is registered in an empty registry: no CPU twin, no fallback.
        assert_eq!(cpu_fallback(&gpu, &Registry::default()), None);
    }
}
