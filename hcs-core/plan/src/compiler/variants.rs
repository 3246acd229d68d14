//! Phase 4, memory-contract validation: every call resolves to one registered variant (chosen by
//! the GPU policy and whether a GPU exists), gets its full parameter set (defaults filled in), and
//! connects to what comes before it: the stack arrives from storage as `ndarray`, and wherever
//! two connected memory types differ a conversion is inserted — or, if this build has none, the
//! pipeline is rejected. A step's output returns to `ndarray` for storage.

use std::collections::{BTreeMap, BTreeSet};

use crate::pipeline::{FunctionCall, FunctionPattern, GpuPolicy, Line, Pipeline, PipelineError, SourceMap, StepRef};
use hcs_core::contract::FunctionContract;
use hcs_core::params::ParamMap;
use hcs_core::registry::Registry;
use hcs_core::stack::MemoryType;

use super::plan::{ResolvedCall, ResolvedPattern};
use hcs_core::Conversion;

/// The memory-type conversions the executor can perform in this build.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConversionTable {
    pairs: BTreeSet<(MemoryType, MemoryType)>,
}

impl ConversionTable {
    /// Only identity (no conversion at all).
    pub fn none() -> Self {
        Self::default()
    }

    /// The conversions compiled in, by the rule `pipeline!` also checks with:
    /// [`conversion_exists`](crate::pipeline::wiring::conversion_exists).
    pub fn built_in() -> Self {
        let mut table = Self::none();
        for from in MemoryType::ALL {
            for to in MemoryType::ALL {
                if from != to && crate::pipeline::wiring::conversion_exists(from, to) {
                    table = table.with(from, to);
                }
            }
        }
        table
    }

    /// Add a conversion.
    pub fn with(mut self, from: MemoryType, to: MemoryType) -> Self {
        self.pairs.insert((from, to));
        self
    }

    /// Whether `from` can become `to` (always for equal types).
    pub fn has(&self, from: MemoryType, to: MemoryType) -> bool {
        from == to || self.pairs.contains(&(from, to))
    }
}

/// Phase-4 result for one step.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The resolved pattern.
    pub func: ResolvedPattern,
    /// Conversion of the step's output back to `ndarray`, if needed.
    pub convert_output: Option<Conversion>,
    /// Whether some call runs on a GPU memory type.
    pub uses_gpu: bool,
    /// Memory type of the step's last function's output.
    pub output_memory: MemoryType,
}

struct Ctx<'a> {
    registry: &'a Registry,
    table: &'a ConversionTable,
    policy: GpuPolicy,
    prefer: &'a [MemoryType],
    gpu_available: bool,
    step: StepRef,
    group_by: Option<hcs_plate::Component>,
    at: Line,
    errors: Vec<PipelineError>,
}

/// Why a GPU policy rules out every registered variant of a function (the text follows the
/// function's name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VariantError {
    /// Only a GPU variant exists, and the policy is `never`.
    #[error(
        "has only a {} variant, and gpu_policy is never (register an ndarray variant under the same name)",
        .0.name()
    )]
    OnlyGpu(MemoryType),
    /// No variant at all.
    #[error("has no registered variant")]
    NoVariant,
}

/// The variant a policy picks, or why the policy rules out every variant. Among GPU-capable
/// variants, `prefer` (the `prefer` config key: memory types, most wanted first) decides; a type
/// it does not list comes after those it lists. With a GPU and `gpu_policy = "prefer"`, an
/// `ndarray` listed before every GPU type keeps the step on the CPU.
pub fn choose_variant(
    variants: &[&'static FunctionContract],
    policy: GpuPolicy,
    gpu_available: bool,
    prefer: &[MemoryType],
) -> Result<&'static FunctionContract, VariantError> {
    let rank = |c: &&'static FunctionContract| prefer.iter().position(|m| *m == c.input_memory).unwrap_or(prefer.len());
    let cpu = variants.iter().copied().find(|c| c.input_memory == MemoryType::Ndarray);
    let gpu = variants.iter().copied().filter(|c| c.input_memory.is_gpu_capable()).min_by_key(rank);
    let cpu_first = cpu.zip(gpu).is_some_and(|(c, g)| rank(&c) < rank(&g));
    match (policy, cpu, gpu) {
        (GpuPolicy::Never, Some(c), _) => Ok(c),
        (GpuPolicy::Never, None, Some(g)) => Err(VariantError::OnlyGpu(g.input_memory)),
        (GpuPolicy::Require, _, Some(g)) => Ok(g),
        (GpuPolicy::Prefer, Some(_), Some(g)) if gpu_available && !cpu_first => Ok(g),
        (_, Some(c), _) => Ok(c),
        (_, None, Some(g)) => Ok(g),
        (_, None, None) => Err(VariantError::NoVariant),
    }
}

/// Resolve a pattern whose input arrives as `incoming` from `source` (for messages); `None` when
/// some call cannot be resolved (its error is in `ctx`). Also returns the output's memory type.
fn resolve(
    p: &FunctionPattern,
    incoming: MemoryType,
    ctx: &mut Ctx<'_>,
    source: &str,
) -> Option<(ResolvedPattern, MemoryType)> {
    match p {
        FunctionPattern::Call(call) => resolve_call(call, incoming, ctx, source),
        FunctionPattern::Chain(members) => resolve_chain(members, incoming, ctx, source),
        FunctionPattern::Dict(entries) => resolve_dict(entries, incoming, ctx, source),
    }
}

/// One call: the policy's variant, a conversion of the incoming stack if its memory type differs
/// (an error if this build has none), and every parameter (defaults filled in).
fn resolve_call(
    call: &FunctionCall,
    incoming: MemoryType,
    ctx: &mut Ctx<'_>,
    source: &str,
) -> Option<(ResolvedPattern, MemoryType)> {
    let variants = ctx.registry.variants(&call.name);
    if variants.is_empty() {
        return None; // reported by the function check
    }
    let contract = match choose_variant(variants, ctx.policy, ctx.gpu_available, ctx.prefer) {
        Ok(c) => c,
        Err(why) => {
            ctx.errors.push(PipelineError::Gpu {
                at: ctx.at,
                step: ctx.step.clone(),
                message: format!("`{}` {why}", call.name),
            });
            return None;
        }
    };
    let convert_input =
        (incoming != contract.input_memory).then_some(Conversion { from: incoming, to: contract.input_memory });
    if !ctx.table.has(incoming, contract.input_memory) {
        ctx.errors.push(PipelineError::NoConversion {
            at: ctx.at,
            step: ctx.step.clone(),
            function: call.name.clone(),
            from: incoming,
            to: contract.input_memory,
            source_desc: source.to_string(),
        });
    }
    let mut params = ParamMap::new();
    for spec in contract.params {
        if let Some(v) = call.params.get(spec.name).cloned().or_else(|| spec.default.map(|d| d())) {
            params.insert(spec.name.to_string(), v);
        }
    }
    let resolved = ResolvedCall {
        function: call.name.clone(),
        input_memory: contract.input_memory,
        output_memory: contract.output_memory,
        params,
        convert_input,
    };
    Some((ResolvedPattern::Call(resolved), contract.output_memory))
}

/// A chain: each member takes what the one before it returns (the first, what comes in).
fn resolve_chain(
    members: &[FunctionPattern],
    incoming: MemoryType,
    ctx: &mut Ctx<'_>,
    source: &str,
) -> Option<(ResolvedPattern, MemoryType)> {
    let mut out = Vec::with_capacity(members.len());
    let mut memory = incoming;
    let mut from = source.to_string();
    let mut ok = true;
    for m in members {
        match resolve(m, memory, ctx, &from) {
            Some((r, mem)) => {
                if let Some(last) = r.calls().last() {
                    from = format!("`{}`", last.function);
                }
                memory = mem;
                out.push(r);
            }
            None => ok = false,
        }
    }
    ok.then_some((ResolvedPattern::Chain { members: out }, memory))
}

/// A dict: every entry takes what comes in; the output's memory type is an entry's that differs
/// from it, if any.
fn resolve_dict(
    entries: &BTreeMap<String, FunctionPattern>,
    incoming: MemoryType,
    ctx: &mut Ctx<'_>,
    source: &str,
) -> Option<(ResolvedPattern, MemoryType)> {
    let mut out = BTreeMap::new();
    let mut memory = incoming;
    let mut ok = true;
    for (k, v) in entries {
        match resolve(v, incoming, ctx, source) {
            Some((r, mem)) => {
                if mem != incoming {
                    memory = mem;
                }
                out.insert(k.clone(), r);
            }
            None => ok = false,
        }
    }
    let by = ctx.group_by?; // a dict without group_by is reported by the function check
    ok.then_some((ResolvedPattern::Dict { by, entries: out }, memory))
}

/// Run phase 4 for every step (`None` where a step cannot be resolved; its errors are reported).
/// `incoming[i]` is the memory type step `i`'s input arrives in and `stored[i]` the one its output
/// is kept in (`ndarray` unless [`device_resident`] kept it on a device).
#[allow(clippy::too_many_arguments)]
pub fn resolve_steps(
    pipeline: &Pipeline,
    registry: &Registry,
    table: &ConversionTable,
    policies: &[GpuPolicy],
    prefer: &[Vec<MemoryType>],
    gpu_available: bool,
    incoming: &[MemoryType],
    stored: &[MemoryType],
    source: Option<&SourceMap>,
) -> (Vec<Option<Resolved>>, Vec<PipelineError>) {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(pipeline.steps.len());
    for (i, step) in pipeline.steps.iter().enumerate() {
        let mut ctx = Ctx {
            registry,
            table,
            policy: policies[i],
            prefer: prefer.get(i).map_or(&[], Vec::as_slice),
            gpu_available,
            step: StepRef { index: i + 1, name: step.name.clone() },
            group_by: step.group_by,
            at: Line(source.and_then(|s| s.step_line(i))),
            errors: Vec::new(),
        };
        let from = if incoming[i] == MemoryType::Ndarray { "storage" } else { "the previous step, kept on the device" };
        let resolved = resolve(&step.func, incoming[i], &mut ctx, from).map(|(func, memory)| {
            let uses_gpu =
                func.calls().iter().any(|c| c.input_memory.is_gpu_capable() || c.output_memory.is_gpu_capable());
            let convert_output = (memory != stored[i]).then_some(Conversion { from: memory, to: stored[i] });
            if !table.has(memory, stored[i]) {
                ctx.errors.push(PipelineError::NoConversion {
                    at: ctx.at,
                    step: ctx.step.clone(),
                    function: "storage".into(),
                    from: memory,
                    to: stored[i],
                    source_desc: "the step's last function".into(),
                });
            }
            Resolved { func, convert_output, uses_gpu, output_memory: memory }
        });
        errors.append(&mut ctx.errors);
        out.push(resolved);
    }
    (out, errors)
}

/// The memory type a pattern's input must have: the first call's, or the common one of a dict's
/// entries (`None` when they differ).
pub fn first_input(p: &ResolvedPattern) -> Option<MemoryType> {
    match p {
        ResolvedPattern::Call(c) => Some(c.input_memory),
        ResolvedPattern::Chain { members } => members.first().and_then(first_input),
        ResolvedPattern::Dict { entries, .. } => {
            let mut kinds = entries.values().map(first_input);
            let first = kinds.next()??;
            kinds.all(|k| k == Some(first)).then_some(first)
        }
    }
}

/// Which steps keep their output on the device: a GPU step whose output stays in memory (no
/// checkpoint, no preview, not the last step), is read only by the next step, and whose
/// next step starts with a call of the same GPU memory type. For those, the output is stored in
/// that memory type and the next step starts from it: no device → host → device round trip.
pub fn device_resident(resolved: &[Resolved], writes_memory_read_next: &[bool]) -> Vec<MemoryType> {
    let mut stored = vec![MemoryType::Ndarray; resolved.len()];
    for i in 0..resolved.len().saturating_sub(1) {
        let out = resolved[i].output_memory;
        if out.is_gpu_capable() && writes_memory_read_next[i] && first_input(&resolved[i + 1].func) == Some(out) {
            stored[i] = out;
        }
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcs_core::contract::{InvokeOutput, PlaneCount, SourceLocation};
    use hcs_core::error::InvokeError;
    use hcs_core::special::SpecialInputs;
    use hcs_core::stack::Stack;

    fn passthrough(stack: Stack, _: &ParamMap, _: &SpecialInputs) -> Result<InvokeOutput, InvokeError> {
        Ok(InvokeOutput { stack, special_outputs: Vec::new() })
    }

    const fn variant(memory: MemoryType) -> FunctionContract {
        FunctionContract {
            name: "f",
            module_path: "m",
            crate_name: "c",
            input_memory: memory,
            output_memory: memory,
            output_planes: PlaneCount::Same,
            plane_shape: hcs_core::PlaneShape::Same,
            special_inputs: &[],
            special_outputs: &[],
            chain_breaker: false,
            params: &[],
            checks: &[],
            peak_memory: None,
            output_shape: None,
            pixel_scale: None,
            pixel_origin: None,
            doc: "",
            location: SourceLocation { file: "f.rs", line: 1, column: 1 },
            invoke: passthrough,
            invoke_views: None,
        }
    }

    static CPU: FunctionContract = variant(MemoryType::Ndarray);
    static GPU: FunctionContract = variant(MemoryType::Torch);

    #[test]
    fn the_policy_picks_the_variant() {
        let both = [&CPU, &GPU];
        let pick = |v: &[&'static FunctionContract], p, gpu| choose_variant(v, p, gpu, &[]).map(|c| c.input_memory);
        assert_eq!(pick(&both, GpuPolicy::Prefer, true), Ok(MemoryType::Torch));
        assert_eq!(pick(&both, GpuPolicy::Prefer, false), Ok(MemoryType::Ndarray));
        assert_eq!(pick(&both, GpuPolicy::Never, true), Ok(MemoryType::Ndarray));
        assert_eq!(
            pick(&both, GpuPolicy::Require, false),
            Ok(MemoryType::Torch),
            "phase 5 then reports the missing GPU"
        );
        assert_eq!(
            pick(&[&CPU], GpuPolicy::Require, true),
            Ok(MemoryType::Ndarray),
            "a CPU-only function is no GPU step"
        );
        assert_eq!(pick(&[&GPU], GpuPolicy::Prefer, false), Ok(MemoryType::Torch));
        let refused = pick(&[&GPU], GpuPolicy::Never, true).expect_err("refused");
        assert_eq!(refused, VariantError::OnlyGpu(MemoryType::Torch));
        assert!(refused.to_string().contains("has only a torch variant, and gpu_policy is never"));
        assert_eq!(pick(&[], GpuPolicy::Prefer, true), Err(VariantError::NoVariant));
    }

    #[test]
    fn prefer_chooses_among_gpu_variants_and_can_keep_a_step_on_the_cpu() {
        const CUDA: FunctionContract = variant(MemoryType::Cuda);
        let all = [&CPU, &GPU, &CUDA];
        let pick = |prefer: &[MemoryType], p| choose_variant(&all, p, true, prefer).map(|c| c.input_memory);
        let default = crate::pipeline::Config::default().prefer;
        assert_eq!(pick(&default, GpuPolicy::Prefer), Ok(MemoryType::Cuda), "cuda first by default");
        assert_eq!(pick(&[MemoryType::Torch], GpuPolicy::Prefer), Ok(MemoryType::Torch));
        assert_eq!(pick(&[MemoryType::Torch, MemoryType::Cuda], GpuPolicy::Require), Ok(MemoryType::Torch));
        assert_eq!(pick(&[MemoryType::Ndarray, MemoryType::Cuda], GpuPolicy::Prefer), Ok(MemoryType::Ndarray));
        assert_eq!(
            pick(&[MemoryType::Ndarray, MemoryType::Cuda], GpuPolicy::Require),
            Ok(MemoryType::Cuda),
            "require still runs on a GPU"
        );
    }

    #[test]
    fn conversions_are_only_what_the_table_holds() {
        let none = ConversionTable::none();
        assert!(none.has(MemoryType::Torch, MemoryType::Torch));
        assert!(!none.has(MemoryType::Ndarray, MemoryType::Torch));
        let one_way = none.with(MemoryType::Ndarray, MemoryType::Cuda);
        assert!(one_way.has(MemoryType::Ndarray, MemoryType::Cuda));
        assert!(!one_way.has(MemoryType::Cuda, MemoryType::Ndarray));
        // Without the torch / cuda features nothing but identity is built in.
        assert_eq!(ConversionTable::built_in().has(MemoryType::Ndarray, MemoryType::Torch), cfg!(feature = "torch"));
    }
}
