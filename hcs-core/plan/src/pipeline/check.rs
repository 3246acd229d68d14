//! Checks of a pipeline against the registry that need no plate: functions exist, parameters
//! exist and accept their values, required parameters are given, dict patterns are routable.
//! Every problem is reported, not just the first.
//!
//! `group_by` names the component whose value picks a dict entry, so it must vary *between*
//! calls: on a dict step, a `group_by` that is also among `variable_components` is an error here
//! (the peer silently routes everything to one key). Without a dict it chooses nothing, and the
//! compiler notes that instead.

use hcs_core::registry::Registry;
use hcs_plate::WellId;

use super::error::{Line, PipelineError, StepRef};
use super::file::SourceMap;
use super::pattern::FunctionPattern;
use super::step::Pipeline;
use super::wiring::{DICT_WITHOUT_GROUP_BY, Link, StepShape, entry_reaches, link};
use hcs_core::contract::FunctionContract;

/// Every problem of `pipeline` against `registry`; `source` adds file lines to the messages.
pub fn check_functions(pipeline: &Pipeline, registry: &Registry, source: Option<&SourceMap>) -> Vec<PipelineError> {
    let mut errors = Vec::new();
    if pipeline.steps.is_empty() {
        errors.push(PipelineError::Empty);
    }
    for (i, step) in pipeline.steps.iter().enumerate() {
        let step_ref = StepRef { index: i + 1, name: step.name.clone() };
        let step_line = Line(source.and_then(|s| s.step_line(i)));
        // A step or dict entry that calls nothing would copy its input through unchanged.
        let nothing = "calls no function (an empty `func` list or dict would pass its input through unchanged); give it at least one";
        match &step.func {
            FunctionPattern::Dict(entries) if !entries.is_empty() => {
                for (key, _) in entries.iter().filter(|(_, e)| e.calls().is_empty()) {
                    errors.push(PipelineError::Config {
                        at: step_line,
                        step: Some(step_ref.clone()),
                        message: format!("dict entry \"{key}\" {nothing}"),
                    });
                }
            }
            func if func.calls().is_empty() => errors.push(PipelineError::Config {
                at: step_line,
                step: Some(step_ref.clone()),
                message: format!("the step {nothing}"),
            }),
            _ => {}
        }
        if step.func.has_dict() && step.group_by.is_none() {
            errors.push(PipelineError::Grouping {
                at: step_line,
                step: step_ref.clone(),
                message: DICT_WITHOUT_GROUP_BY.into(),
            });
        }
        // Without a dict, `group_by` chooses nothing (the compiler notes it): no conflict.
        if let Some(g) = step.group_by.filter(|g| step.func.has_dict() && step.variable_components.contains(g)) {
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
            for problem in registry.problems().iter().filter(|p| p.function() == call.name) {
                errors.push(PipelineError::Config {
                    at: call_line,
                    step: Some(step_ref.clone()),
                    message: problem.to_string(),
                });
            }
            let errors_before = errors.len();
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
            if errors.len() == errors_before {
                for broken in broken_rules(contract, &call.params, None) {
                    errors.push(PipelineError::BrokenRule {
                        at: call_line,
                        step: step_ref.clone(),
                        function: call.name.clone(),
                        params: broken.params,
                        rule: broken.rule,
                    });
                }
            }
            for spec in contract.params.iter().filter(|p| p.is_required() && !call.params.contains_key(p.name)) {
                errors.push(PipelineError::MissingParameter {
                    at: call_line,
                    step: step_ref.clone(),
                    function: call.name.clone(),
                    param: spec.name.to_string(),
                    ty: spec.accepts(),
                });
            }
        }
    }
    errors
}

/// A `#[check]` rule that the values break.
pub struct Broken {
    /// The parameters the rule reads, with their values.
    pub params: String,
    /// The rule and its message.
    pub rule: String,
}

/// The `#[check]` rules of `contract` that `params` (defaults filled in) break; with `image`,
/// also the rules that read the image. Rules whose parameters are missing are skipped (the
/// missing parameter is reported on its own).
pub fn broken_rules(
    contract: &FunctionContract,
    params: &hcs_core::ParamMap,
    image: Option<&hcs_core::ImageGeometry>,
) -> Vec<Broken> {
    contract
        .checks
        .iter()
        .filter(|c| image.is_some() || !c.needs_image)
        .filter_map(|c| broken_rule(contract, c, params, image))
        .collect()
}

/// `Some` when `check` fails on `params` (and `image`).
pub fn broken_rule(
    contract: &FunctionContract,
    check: &hcs_core::ParamCheck,
    params: &hcs_core::ParamMap,
    image: Option<&hcs_core::ImageGeometry>,
) -> Option<Broken> {
    (check.evaluate(params, image) == Ok(hcs_core::CheckOutcome::Fails))
        .then(|| Broken { params: describe_values(contract, check.params, params), rule: check.describe() })
}

/// `name = value, ..` for the named parameters (defaults filled in).
pub fn describe_values(contract: &FunctionContract, names: &[&str], params: &hcs_core::ParamMap) -> String {
    names
        .iter()
        .map(|name| {
            let value =
                params.get(*name).cloned().or_else(|| contract.param(name).and_then(|p| p.default.map(|d| d())));
            value.map_or_else(|| (*name).to_string(), |v| format!("{name} = {v}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether every parameter `params` gives is one `contract` has and accepts, and every
/// required one is given: only then are its rules and estimates evaluated.
pub fn params_valid(contract: &FunctionContract, params: &hcs_core::ParamMap) -> bool {
    params.iter().all(|(k, v)| contract.param(k).is_some_and(|s| s.check(v).is_ok()))
        && contract.params.iter().all(|p| !p.is_required() || params.contains_key(p.name))
}

/// The values a configuration layer sets (path tricks, ranges), as errors naming the layer and
/// the step, each at the line `at` gives for its key (`Line(None)` for a layer with no file).
/// `what` prefixes the message (`"[config]: "`, `"config: "`, `"global config: "`).
pub fn config_errors(
    layer: &super::config::ConfigLayer,
    at: impl Fn(&str) -> Line,
    step: Option<StepRef>,
    what: &str,
) -> Vec<PipelineError> {
    layer
        .validate()
        .into_iter()
        .map(|e| PipelineError::Config { at: at(e.key), step: step.clone(), message: format!("{what}{e}") })
        .collect()
}

/// A step's configuration layer: its values ([`config_errors`]), and the keys a step cannot
/// have its own of — `output_folder` and `output_suffix` name the run's output folder, one for
/// every step (its lock, identity and `--force` cover what every step writes). Each error is at
/// its key's line in `source`, or the step's.
pub fn step_config_errors(
    layer: &super::config::ConfigLayer,
    source: Option<&SourceMap>,
    step: &StepRef,
) -> Vec<PipelineError> {
    let i = step.index.saturating_sub(1);
    let at = |key: &str| Line(source.and_then(|s| s.config_line(Some(i), Some(key))));
    let mut errors = config_errors(layer, at, Some(step.clone()), "config: ");
    let run_wide: Vec<&str> =
        [layer.output_folder.as_ref().map(|_| "output_folder"), layer.output_suffix.as_ref().map(|_| "output_suffix")]
            .into_iter()
            .flatten()
            .collect();
    if let Some(first) = run_wide.first() {
        let named: Vec<String> = run_wide.iter().map(|k| format!("`{k}`")).collect();
        errors.push(PipelineError::Config {
            at: at(first),
            step: Some(step.clone()),
            message: format!(
                "config: {} name{} the run's output folder, one for every step: set {} in `[config]`, a global configuration file or `hcs run --out`; a step's checkpoint goes in that folder, under its `sub_dir`",
                named.join(" and "),
                if run_wide.len() == 1 { "s" } else { "" },
                if run_wide.len() == 1 { "it" } else { "them" }
            ),
        });
    }
    errors
}

/// The errors of the pipeline's `[config]` values, each at its key's line in `source`.
pub fn pipeline_config_errors(pipeline: &Pipeline, source: Option<&SourceMap>) -> Vec<PipelineError> {
    let at = |key: &str| Line(source.and_then(|s| s.config_line(None, Some(key))));
    config_errors(&pipeline.config, at, None, "[config]: ")
}

/// The pipeline's own configuration layers — `[config]` and each step's `config` — checked
/// without a plate (`hcs check PIPELINE`); compiling checks them with the same messages.
pub fn check_config(pipeline: &Pipeline, source: Option<&SourceMap>) -> Vec<PipelineError> {
    let mut errors = pipeline_config_errors(pipeline, source);
    for (i, step) in pipeline.steps.iter().enumerate() {
        let step_ref = StepRef { index: i + 1, name: step.name.clone() };
        errors.extend(step_config_errors(&step.config, source, &step_ref));
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

/// The wiring shape of `pipeline`: per step, the registered calls (depth first) as
/// `(index among the step's calls, contract, name)`. Unknown functions are left out (reported by
/// [`check_functions`]).
pub fn step_calls<'p>(
    pipeline: &'p Pipeline,
    registry: &Registry,
) -> Vec<Vec<(usize, &'static FunctionContract, &'p str)>> {
    pipeline
        .steps
        .iter()
        .map(|step| {
            step.func
                .calls()
                .into_iter()
                .enumerate()
                .filter_map(|(k, (_, c))| {
                    registry.variants(&c.name).first().map(|&contract| (k, contract, c.name.as_str()))
                })
                .collect()
        })
        .collect()
}

/// Special I/O wiring: every special input (except the [`PlateInput`](super::PlateInput)s) has a producer
/// earlier in the pipeline (an earlier step, or an earlier member of the same chain), by the
/// shared rule [`link`]; no key is produced twice within one step. Unknown functions are left to
/// [`check_functions`].
pub fn check_special_io(pipeline: &Pipeline, registry: &Registry, source: Option<&SourceMap>) -> Vec<PipelineError> {
    let calls = step_calls(pipeline, registry);
    let contracts: Vec<Vec<&FunctionContract>> = calls.iter().map(|s| s.iter().map(|c| c.1).collect()).collect();
    let shapes: Vec<StepShape<'_>> =
        pipeline.steps.iter().zip(&contracts).map(|(step, calls)| StepShape { name: &step.name, calls }).collect();
    let step_ref = |i: usize| StepRef { index: i + 1, name: pipeline.steps[i].name.clone() };
    let mut errors = Vec::new();
    for (i, step_calls) in calls.iter().enumerate() {
        let mut produced_here: Vec<(&'static str, &str)> = Vec::new();
        // The dict keys on each call's path (indexed like `step.func.calls()`).
        let paths: Vec<Vec<&str>> = pipeline.steps[i].func.calls().into_iter().map(|(path, _)| path).collect();
        for (c, &(k, contract, name)) in step_calls.iter().enumerate() {
            let at = Line(source.and_then(|s| s.call_line(i, k)).or(source.and_then(|s| s.step_line(i))));
            for input in contract.special_inputs {
                match link(&shapes, i, c, input.key) {
                    Link::Missing { later } => errors.push(PipelineError::MissingSpecialInput {
                        at,
                        step: step_ref(i),
                        function: name.to_string(),
                        key: input.key.to_string(),
                        later: later.map(|j| step_ref(j).to_string()),
                    }),
                    Link::Produced { step: p, call: pc, .. }
                        if p == i && !entry_reaches(&paths[calls[p][pc].0], &paths[k]) =>
                    {
                        let path = |k: usize| paths[k].iter().map(|s| s.to_string()).collect();
                        errors.push(PipelineError::DictEntryLink {
                            at,
                            step: step_ref(i),
                            link: Box::new(super::error::EntryLink {
                                key: input.key.to_string(),
                                producer: calls[p][pc].2.to_string(),
                                producer_path: path(calls[p][pc].0),
                                consumer: name.to_string(),
                                consumer_path: path(k),
                            }),
                        });
                    }
                    _ => {}
                }
            }
            for output in contract.special_outputs {
                if let Some((_, first)) = produced_here.iter().find(|(p, _)| *p == output.key) {
                    errors.push(PipelineError::DuplicateProducer {
                        at,
                        step: step_ref(i),
                        key: output.key.to_string(),
                        first: first.to_string(),
                        second: name.to_string(),
                    });
                } else {
                    produced_here.push((output.key, name));
                }
            }
        }
    }
    errors
}
