//! Phase 4a: parameters that are image sample values (`#[param(sample)]`, such as the value
//! the upper percentile maps to) weighed against the samples the plate's storage type holds.
//!
//! Outputs are stored in the plate's type, rounded and clamped. So a default above that
//! range (65535 on an 8-bit plate) becomes its largest value in the plan, and the note says
//! so; a value the pipeline gives outside it is kept, and the note says that what it maps to is
//! clamped where the step's output is stored. A default is left as declared where the
//! function's own rules would refuse the substitute (a given `target_min` above 255).

use hcs_core::FunctionContract;
use hcs_core::params::{ParamMap, ParamValue};
use hcs_core::registry::Registry;

use super::plan::ResolvedPattern;
use super::variants::Resolved;
use crate::pipeline::{FunctionPattern, Pipeline, broken_rules};

/// Fit the sample parameters of every resolved call to `range` (the plate's
/// [`sample_range`](super::plate_info::PlateInfo::sample_range); `None`: nothing to fit),
/// returning what the user is told.
pub fn fit(
    pipeline: &Pipeline,
    registry: &Registry,
    resolved: &mut [Resolved],
    range: Option<(f64, f64)>,
) -> Vec<String> {
    let Some(range) = range else { return Vec::new() };
    let mut notes = Vec::new();
    for (i, (step, r)) in pipeline.steps.iter().zip(resolved.iter_mut()).enumerate() {
        let mut at = Site { step: i + 1, name: &step.name, range, registry, notes: &mut notes };
        walk(&step.func, &mut r.func, &mut at);
    }
    notes.sort();
    notes.dedup();
    notes
}

/// Where the notes go, and what they name.
struct Site<'a> {
    step: usize,
    name: &'a str,
    range: (f64, f64),
    registry: &'a Registry,
    notes: &'a mut Vec<String>,
}

/// The pipeline's pattern and its resolution side by side (they have the same shape).
fn walk(written: &FunctionPattern, resolved: &mut ResolvedPattern, at: &mut Site<'_>) {
    match (written, resolved) {
        (FunctionPattern::Call(call), ResolvedPattern::Call(r)) => {
            if let Some(contract) = at.registry.get(&r.function, r.input_memory) {
                fit_call(contract, &call.params, &mut r.params, at);
            }
        }
        (FunctionPattern::Chain(members), ResolvedPattern::Chain { members: rs }) => {
            for (m, r) in members.iter().zip(rs.iter_mut()) {
                walk(m, r, at);
            }
        }
        (FunctionPattern::Dict(entries), ResolvedPattern::Dict { entries: rs, .. }) => {
            for (key, m) in entries {
                if let Some(r) = rs.get_mut(key) {
                    walk(m, r, at);
                }
            }
        }
        _ => {}
    }
}

/// One call: `given` as the pipeline wrote it, `params` as the plan holds it (defaults in).
fn fit_call(contract: &FunctionContract, given: &ParamMap, params: &mut ParamMap, at: &mut Site<'_>) {
    let (lo, hi) = at.range;
    for spec in contract.params.iter().filter(|p| p.rule.sample) {
        let Some(value) = params.get(spec.name).and_then(number) else { continue };
        if (lo..=hi).contains(&value) {
            continue;
        }
        let nearest = value.clamp(lo, hi);
        let what = format!("step {} `{}`: `{}`", at.step, at.name, contract.name);
        let stored = format!("this plate's images hold samples in {lo}..={hi}, and outputs are stored in its type");
        if !given.contains_key(spec.name) {
            let mut fitted = params.clone();
            fitted.insert(spec.name.to_string(), ParamValue::Float(nearest));
            if broken_rules(contract, &fitted, None).is_empty() {
                *params = fitted;
                at.notes.push(format!(
                    "{what} runs with {} = {nearest}, not its default {value}: {stored}, where {value} would be clamped to {nearest}",
                    spec.name
                ));
                continue;
            }
        }
        at.notes.push(format!(
            "{what} maps to {} = {value}: {stored}, where what maps to {value} is clamped to {nearest}",
            spec.name
        ));
    }
}

/// The value of a numeric parameter.
fn number(value: &ParamValue) -> Option<f64> {
    match value {
        ParamValue::Float(x) => Some(*x),
        ParamValue::Int(i) => Some(*i as f64),
        _ => None,
    }
}
