//! Checks of a pipeline against the registry that need no plate: functions exist, parameters
//! exist and accept their values, required parameters are given, dict patterns are routable.
//! Every problem is reported, not just the first.
//!
//! `group_by` names the component whose value picks a dict entry, so it must vary *between*
//! calls: a `group_by` that is also among `variable_components` is an error here (the peer
//! silently routes everything to one key).

use crate::plate::WellId;
use crate::registry::Registry;

use super::error::{Line, PipelineError, StepRef};
use super::file::SourceMap;
use super::step::Pipeline;

/// Every problem of `pipeline` against `registry`; `source` adds file lines to the messages.
pub fn check_functions(pipeline: &Pipeline, registry: &Registry, source: Option<&SourceMap>) -> Vec<PipelineError> {
    let mut errors = Vec::new();
    if pipeline.steps.is_empty() {
        errors.push(PipelineError::Empty);
    }
    for (i, step) in pipeline.steps.iter().enumerate() {
        let step_ref = StepRef { index: i + 1, name: step.name.clone() };
        let step_line = Line(source.and_then(|s| s.step_line(i)));
        if step.func.has_dict() && step.group_by.is_none() {
            errors.push(PipelineError::Grouping {
                at: step_line,
                step: step_ref.clone(),
                message: "a dict pattern needs `group_by` (the component whose value picks the entry)".into(),
            });
        }
        if let Some(g) = step.group_by.filter(|g| step.variable_components.contains(g)) {
            errors.push(PipelineError::Grouping {
                at: step_line,
                step: step_ref.clone(),
                message: format!(
                    "`group_by = \"{g}\"` is also a variable component: one call would hold several {g} values, so no dict entry can be chosen"
                ),
            });
        }
        for (k, (_, call)) in step.func.calls().into_iter().enumerate() {
            let call_line = Line(source.and_then(|s| s.call_line(i, k)).or(step_line.0));
            let Some(contract) = registry.variants(&call.name).first() else {
                errors.push(PipelineError::UnknownFunction {
                    at: call_line,
                    step: step_ref.clone(),
                    name: call.name.clone(),
                    suggestion: registry.suggest(&call.name).map(str::to_string),
                });
                continue;
            };
            for (param, value) in &call.params {
                let at = Line(source.and_then(|s| s.param_line(i, k, param)).or(call_line.0));
                match contract.param(param) {
                    None => errors.push(PipelineError::UnknownParameter {
                        at,
                        step: step_ref.clone(),
                        function: call.name.clone(),
                        param: param.clone(),
                        known: contract.params.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
                    }),
                    Some(spec) => {
                        if let Err(e) = spec.check(value) {
                            errors.push(PipelineError::BadParameter {
                                at,
                                step: step_ref.clone(),
                                function: call.name.clone(),
                                param: param.clone(),
                                message: e.to_string(),
                            });
                        }
                    }
                }
            }
            for spec in contract.params.iter().filter(|p| p.is_required() && !call.params.contains_key(p.name)) {
                errors.push(PipelineError::MissingParameter {
                    at: call_line,
                    step: step_ref.clone(),
                    function: call.name.clone(),
                    param: spec.name.to_string(),
                    ty: spec.ty.to_string(),
                });
            }
        }
    }
    errors
}

/// Well filters of `pipeline` that name wells not in `plate_wells`.
pub fn check_wells(pipeline: &Pipeline, plate_wells: &[WellId], source: Option<&SourceMap>) -> Vec<PipelineError> {
    let mut errors = Vec::new();
    for (i, step) in pipeline.steps.iter().enumerate() {
        let wells = step.materialize.as_ref().and_then(|m| m.wells.as_ref());
        for w in wells.into_iter().flatten().filter(|w| !plate_wells.contains(w)) {
            errors.push(PipelineError::UnknownWell {
                at: Line(source.and_then(|s| s.step_line(i))),
                step: StepRef { index: i + 1, name: step.name.clone() },
                well: w.to_string(),
            });
        }
    }
    errors
}

/// Special inputs the compiler supplies from the plate's metadata instead of an earlier step.
pub const PLATE_SUPPLIED_INPUTS: [&str; 2] = ["grid_dimensions", "pixel_size"];

/// Special I/O wiring: every special input (except [`PLATE_SUPPLIED_INPUTS`]) has a producer
/// earlier in the pipeline (an earlier step, or an earlier member of the same chain); no key is
/// produced twice within one step. Unknown functions are left to [`check_functions`].
pub fn check_special_io(pipeline: &Pipeline, registry: &Registry, source: Option<&SourceMap>) -> Vec<PipelineError> {
    let contract = |name: &str| registry.variants(name).first().copied();
    let producers_of_step = |i: usize| -> Vec<(&'static str, String)> {
        pipeline.steps[i]
            .func
            .calls()
            .into_iter()
            .filter_map(|(_, c)| contract(&c.name).map(|k| (k, c.name.clone())))
            .flat_map(|(k, name)| k.special_outputs.iter().map(move |o| (o.key, name.clone())))
            .collect()
    };
    let step_ref = |i: usize| StepRef { index: i + 1, name: pipeline.steps[i].name.clone() };
    let mut errors = Vec::new();
    let mut available: Vec<&'static str> = Vec::new();
    for (i, step) in pipeline.steps.iter().enumerate() {
        let mut produced_here: Vec<(&'static str, String)> = Vec::new();
        for (k, (_, call)) in step.func.calls().into_iter().enumerate() {
            let Some(c) = contract(&call.name) else { continue };
            let at = Line(source.and_then(|s| s.call_line(i, k)).or(source.and_then(|s| s.step_line(i))));
            for input in c.special_inputs {
                let key = input.key;
                let here = produced_here.iter().any(|(p, _)| *p == key);
                if PLATE_SUPPLIED_INPUTS.contains(&key) || available.contains(&key) || here {
                    continue;
                }
                let later =
                    (i + 1..pipeline.steps.len()).find(|&j| producers_of_step(j).iter().any(|(p, _)| *p == key));
                errors.push(PipelineError::MissingSpecialInput {
                    at,
                    step: step_ref(i),
                    function: call.name.clone(),
                    key: key.to_string(),
                    later: later.map(|j| step_ref(j).to_string()),
                });
            }
            for output in c.special_outputs {
                if let Some((_, first)) = produced_here.iter().find(|(p, _)| *p == output.key) {
                    errors.push(PipelineError::DuplicateProducer {
                        at,
                        step: step_ref(i),
                        key: output.key.to_string(),
                        first: first.clone(),
                        second: call.name.clone(),
                    });
                } else {
                    produced_here.push((output.key, call.name.clone()));
                }
            }
        }
        available.extend(produced_here.into_iter().map(|(k, _)| k));
    }
    errors
}
