//! Phase 4c, shared results: a step whose only call repeats the first call of an earlier step's
//! chain on the same planes takes that call's result instead of computing it again.
//!
//! The canonical pipeline normalizes the raw planes twice: step 1 normalizes and then filters
//! them (`normalize + tophat`), and step 5 normalizes them again, from the plate, for the
//! assembly. Both calls are the same function with the same parameters on the same groups of
//! the same planes, so their results are the same: step 1 can keep each group's planes as the
//! normalization returns them, and step 5 can take them without reading and normalizing the
//! raw planes a second time. The well then holds those planes from the one step to the other:
//! the compiler counts them in the well's peak, and shares only while that stays within the
//! reusing step's `memory_budget_mib`, saying so in a note either way.
//!
//! A pair qualifies when:
//! - the later step's configuration allows it (`reuse_results`, default true);
//! - the later step's pattern is one call, equal to the first member of the earlier step's
//!   chain (a chain of two or more calls): the same function, variant, parameters and
//!   conversion;
//! - both read the plate (the first step, or `input_source = "pipeline_start"`) with the same
//!   component values, stack the same components and route by the same `group_by`;
//! - both run on the host (no GPU call, output kept as `ndarray`), and the call has no special
//!   inputs or outputs (the later step lists none).

use super::components::Flow;
use super::init::Init;
use super::materialize::StoragePlan;
use super::plan::{Location, ResolvedPattern, SharedResult};
use super::variants::Resolved;
use crate::pipeline::Pipeline;

/// One shared result: step `from` (0-based) keeps its first call's planes for step `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sharing {
    /// The step whose chain starts with the call (0-based).
    pub from: usize,
    /// The step that repeats it (0-based).
    pub to: usize,
    /// Where the planes wait in the well's memory.
    pub namespace: String,
}

impl Sharing {
    /// The plan entry of the sharing step.
    pub fn on_sharer(&self) -> SharedResult {
        SharedResult { step: self.to + 1, namespace: self.namespace.clone() }
    }

    /// The plan entry of the reusing step.
    pub fn on_reuser(&self) -> SharedResult {
        SharedResult { step: self.from + 1, namespace: self.namespace.clone() }
    }
}

/// The first call of a host chain of two or more calls.
fn first_call(resolved: &Resolved) -> Option<&ResolvedPattern> {
    match &resolved.func {
        ResolvedPattern::Chain { members } if members.len() >= 2 && !resolved.uses_gpu => {
            members.first().filter(|m| matches!(m, ResolvedPattern::Call(_)))
        }
        _ => None,
    }
}

/// Every pair that qualifies (see the module docs); a step shares with at most one later step.
pub fn find(
    pipeline: &Pipeline,
    init: &Init,
    flows: &[Flow],
    storage: &StoragePlan,
    resolved: &[Resolved],
) -> Vec<Sharing> {
    let reads_plate = |i: usize| matches!(storage.steps[i].reads, Location::Plate { .. });
    let mut out: Vec<Sharing> = Vec::new();
    for to in 0..resolved.len() {
        let step = &init.steps[to];
        let own = &resolved[to];
        let ResolvedPattern::Call(call) = &own.func else { continue };
        let host = !own.uses_gpu
            && call.input_memory.is_ndarray()
            && call.output_memory.is_ndarray()
            && own.convert_output.is_none();
        if !step.config.reuse_results
            || !host
            || !reads_plate(to)
            || !step.special_inputs.is_empty()
            || !step.special_outputs.is_empty()
        {
            continue;
        }
        let from = (0..to).find(|&from| {
            first_call(&resolved[from]) == Some(&own.func)
                && reads_plate(from)
                && flows[from].values_in == flows[to].values_in
                && pipeline.steps[from].variable_components == pipeline.steps[to].variable_components
                && pipeline.steps[from].group_by == pipeline.steps[to].group_by
                && !out.iter().any(|s| s.from == from)
        });
        if let Some(from) = from {
            out.push(Sharing { from, to, namespace: format!("step{}-shared", from + 1) });
        }
    }
    out
}

/// Apply `sharings` to the storage plan: each reusing step reads the shared planes from memory,
/// and every step from the sharer up to the reuser holds them.
pub fn apply(storage: &mut StoragePlan, sharings: &[Sharing]) {
    for s in sharings {
        let bytes = storage.steps[s.to].output_bytes.unwrap_or(0);
        for held in &mut storage.steps[s.from..s.to] {
            held.holds_shared += bytes;
        }
        let reuser = &mut storage.steps[s.to];
        reuser.reads = Location::Memory { namespace: s.namespace.clone() };
        reuser.shared_from = Some(s.from);
    }
}

/// The compiler's note on a sharing: applied (`refused` is `None`), or left out because the
/// well's intermediates with it (`refused`: their estimated peak in bytes, without the files
/// waiting for the disk, unknown when `None`; and the budget in MiB) do not fit the reusing
/// step's memory budget.
pub fn note(pipeline: &Pipeline, s: &Sharing, bytes: Option<u64>, refused: Option<(Option<u64>, u64)>) -> String {
    let (from, to) = (&pipeline.steps[s.from].name, &pipeline.steps[s.to].name);
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / 1048576.0);
    let size = bytes.map_or_else(|| "an unknown size".to_string(), |b| format!("~{}", mib(b)));
    let what =
        format!("step {} `{to}` repeats the first call of step {} `{from}` on the same planes", s.to + 1, s.from + 1);
    match refused {
        None => format!(
            "{what}: it takes that call's result, kept in memory ({size} per well), instead of reading and computing it again (`config = {{ reuse_results = false }}` on step {} turns this off)",
            s.to + 1
        ),
        Some((Some(peak), budget)) => format!(
            "{what}, but keeping that result ({size} per well) would take the well's intermediates to an estimated {}, over memory_budget_mib = {budget}: the call runs again",
            mib(peak)
        ),
        Some((None, _)) => format!(
            "{what}, but the well's intermediates with that result kept cannot be estimated before the run: the call runs again"
        ),
    }
}
