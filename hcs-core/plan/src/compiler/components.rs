//! Phase 1, component flow: which component values exist at every step. A function declared
//! `planes = one` collapses the step's variable components to their first value (a z projection
//! leaves z_index 1, a composite channel 1, a mosaic site 1); `planes = any` makes them unknown.
//! With this the compiler checks dict keys against the data *as it is at that step* and counts
//! the calls per well (a special output made by several calls of one well needs
//! `merge_outputs`).

use std::collections::BTreeMap;

use crate::pipeline::{
    FunctionPattern, InputSource, Line, Pipeline, PipelineError, SourceMap, StepRef, dict_key_matches,
};
use hcs_core::contract::PlaneCount;
use hcs_core::registry::Registry;
use hcs_plate::Component;

use super::plan::ComponentValues;
use super::plate_info::{PlateInfo, WELL_COMPONENTS};

/// Component values around one step.
#[derive(Clone, Debug)]
pub struct Flow {
    /// Values of the step's input.
    pub values_in: ComponentValues,
    /// Values of its output.
    pub values_out: ComponentValues,
    /// Calls per well, when known.
    pub calls_per_well: Option<usize>,
    /// For each component whose values differ from the plate's: the step (1-based) that changed it.
    pub changed_by: BTreeMap<Component, usize>,
    /// Values each component of the input can take (see `bound_out`).
    pub bound_in: BTreeMap<Component, Vec<u32>>,
    /// Values each component of the output can take: exact where `values_out` knows them,
    /// otherwise the values before the step that made them unknown (a call returns at most as
    /// many planes as it received, named after the first of them — a subset).
    pub bound_out: BTreeMap<Component, Vec<u32>>,
}

/// The plate's values, as the first step sees them.
pub fn plate_values(plate: &PlateInfo) -> ComponentValues {
    WELL_COMPONENTS.iter().map(|&c| (c, Some(plate.values.get(&c).cloned().unwrap_or_else(|| vec![1])))).collect()
}

fn combine_chain(a: PlaneCount, b: PlaneCount) -> PlaneCount {
    match (a, b) {
        (PlaneCount::Any, _) | (_, PlaneCount::Any) => PlaneCount::Any,
        (PlaneCount::One, _) | (_, PlaneCount::One) => PlaneCount::One,
        _ => PlaneCount::Same,
    }
}

/// How many planes a pattern returns (unknown functions count as `same`: they are reported elsewhere).
pub fn pattern_planes(pattern: &FunctionPattern, registry: &Registry) -> PlaneCount {
    match pattern {
        FunctionPattern::Call(c) => registry.variants(&c.name).first().map_or(PlaneCount::Same, |k| k.output_planes),
        FunctionPattern::Chain(members) => {
            members.iter().map(|m| pattern_planes(m, registry)).fold(PlaneCount::Same, combine_chain)
        }
        FunctionPattern::Dict(entries) => {
            // Groups without an entry pass through unchanged, so only an all-`same` dict is `same`.
            if entries.values().all(|p| pattern_planes(p, registry) == PlaneCount::Same) {
                PlaneCount::Same
            } else {
                PlaneCount::Any
            }
        }
    }
}

/// How many values component `c` has, if known.
pub(crate) fn count(values: &ComponentValues, c: Component) -> Option<usize> {
    values.get(&c).cloned().flatten().map(|v| v.len())
}

/// How many values of variable component `c` one call stacks: 1 for the well (a call never
/// spans wells), else every value of `c` at the step.
pub(crate) fn per_call(values: &ComponentValues, c: Component) -> Option<usize> {
    if c == Component::Well { Some(1) } else { count(values, c) }
}

/// Component values through the pipeline. `sources` are the effective input sources (chain
/// breakers applied).
pub fn flow(pipeline: &Pipeline, plate: &PlateInfo, registry: &Registry, sources: &[InputSource]) -> Vec<Flow> {
    let start = plate_values(plate);
    let bound_start: BTreeMap<Component, Vec<u32>> =
        start.iter().map(|(c, v)| (*c, v.clone().unwrap_or_else(|| vec![1]))).collect();
    let mut current = start.clone();
    let mut bound = bound_start.clone();
    let mut changed: BTreeMap<Component, usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(pipeline.steps.len());
    for (i, step) in pipeline.steps.iter().enumerate() {
        if sources[i] == InputSource::PipelineStart {
            current = start.clone();
            bound = bound_start.clone();
            changed.clear();
        }
        let values_in = current.clone();
        let bound_in = bound.clone();
        let calls_per_well = WELL_COMPONENTS
            .iter()
            .filter(|c| !step.variable_components.contains(c))
            .map(|&c| count(&values_in, c))
            .try_fold(1usize, |acc, n| n.map(|n| acc * n));
        let changed_in = changed.clone();
        let declared = declared_planes(&step.func, registry, &step.variable_components, &current);
        match pattern_planes(&step.func, registry) {
            PlaneCount::Same => {}
            PlaneCount::Any if declared.is_some() => {
                // The call declares how many planes it returns (`#[output_shape]`), and those
                // are named after the first of its inputs: the values are known exactly.
                for (c, values) in declared.unwrap_or_default() {
                    bound.insert(c, values.clone());
                    current.insert(c, Some(values));
                    changed.insert(c, i + 1);
                }
            }
            planes => {
                for c in step.variable_components.iter().filter(|c| WELL_COMPONENTS.contains(c)) {
                    let v = match planes {
                        PlaneCount::One => {
                            current.get(c).cloned().flatten().map(|v| v.into_iter().take(1).collect::<Vec<u32>>())
                        }
                        _ => None,
                    };
                    if let Some(known) = &v {
                        bound.insert(*c, known.clone());
                    }
                    current.insert(*c, v);
                    changed.insert(*c, i + 1);
                }
            }
        }
        out.push(Flow {
            values_in,
            values_out: current.clone(),
            calls_per_well,
            changed_by: changed_in,
            bound_in,
            bound_out: bound.clone(),
        });
    }
    out
}

/// The values of the variable components after a step that is one call declaring its output
/// plane count (`#[output_shape]`), when that count does not depend on the plane size and every
/// variable component's values are known: the call's outputs are named after its first inputs,
/// in plane order (timepoint, site, channel, z).
fn declared_planes(
    pattern: &FunctionPattern,
    registry: &Registry,
    variable: &[Component],
    current: &ComponentValues,
) -> Option<Vec<(Component, Vec<u32>)>> {
    let FunctionPattern::Call(call) = pattern else { return None };
    let contract = registry.variants(&call.name).first().copied()?;
    let shape = contract.output_shape?;
    if !crate::pipeline::params_valid(contract, &call.params) {
        return None;
    }
    const ORDER: [Component; 4] = [Component::Timepoint, Component::Site, Component::Channel, Component::Z];
    let axes: Vec<(Component, Vec<u32>)> = ORDER
        .iter()
        .filter(|c| variable.contains(c))
        .map(|&c| current.get(&c).cloned().flatten().map(|v| (c, v)))
        .collect::<Option<_>>()?;
    if axes.iter().any(|(_, v)| v.is_empty()) {
        return None;
    }
    let planes: usize = axes.iter().map(|(_, v)| v.len()).product();
    let count = |side: usize| {
        let image = hcs_core::ImageGeometry { height: side, width: side, planes: Some(planes), sites: None };
        (shape.eval)(&call.params, Some(&image)).ok().flatten().and_then(|g| g.planes)
    };
    let n = count(64).filter(|n| (1..=planes).contains(n) && Some(*n) == count(4096))?;
    // The first `n` planes in order, each component's values among them.
    let mut out: Vec<(Component, Vec<u32>)> = axes.iter().map(|(c, _)| (*c, Vec::new())).collect();
    for k in 0..n {
        let mut rest = k;
        for (idx, (_, values)) in axes.iter().enumerate().rev() {
            let v = values[rest % values.len()];
            rest /= values.len();
            if !out[idx].1.contains(&v) {
                out[idx].1.push(v);
            }
        }
    }
    for (_, values) in &mut out {
        values.sort_unstable();
    }
    Some(out)
}

fn describe(values: &[u32]) -> String {
    values.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

fn dict_keys(pattern: &FunctionPattern, out: &mut Vec<String>) {
    match pattern {
        FunctionPattern::Call(_) => {}
        FunctionPattern::Chain(m) => m.iter().for_each(|p| dict_keys(p, out)),
        FunctionPattern::Dict(entries) => {
            for (k, p) in entries {
                out.push(k.clone());
                dict_keys(p, out);
            }
        }
    }
}

/// The component a step's groups are routed by and the values they have there (wells: the
/// plate's), or `None` where the step has no `group_by` or the values are unknown before the run.
fn routed_values(
    step: &crate::pipeline::FunctionStep,
    flow: &Flow,
    plate: &PlateInfo,
) -> Option<(Component, Vec<String>)> {
    if !step.func.has_dict() {
        return None; // `group_by` only chooses dict entries
    }
    let by = step.group_by.filter(|g| !step.variable_components.contains(g))?;
    let present = if by == Component::Well {
        plate.wells.iter().map(ToString::to_string).collect()
    } else {
        flow.values_in.get(&by).cloned().flatten()?.iter().map(u32::to_string).collect()
    };
    Some((by, present))
}

/// Notes for the groups a dict step passes through unchanged because no entry names their
/// value (documented, but easy to miss: a channel left out of the dict is written as read).
/// Where the entries reshape the planes, [`check_dict_keys`] refuses it instead.
pub fn pass_through_notes(pipeline: &Pipeline, flows: &[Flow], plate: &PlateInfo) -> Vec<String> {
    let mut notes = Vec::new();
    for (i, (step, flow)) in pipeline.steps.iter().zip(flows).enumerate() {
        if !step.func.has_dict() {
            if let Some(by) = step.group_by {
                notes.push(format!(
                    "step {} `{}`: `group_by = \"{by}\"` chooses a dict entry for each {by}, but `func` is not a dict: it changes nothing here",
                    i + 1,
                    step.name
                ));
            }
            continue;
        }
        let Some((by, present)) = routed_values(step, flow, plate) else { continue };
        let mut keys = Vec::new();
        dict_keys(&step.func, &mut keys);
        let uncovered: Vec<&str> =
            present.iter().filter(|p| !keys.iter().any(|k| dict_key_matches(k, p))).map(String::as_str).collect();
        if !uncovered.is_empty() {
            notes.push(format!(
                "step {} `{}`: the dict has no entry for {by} {}: {} planes pass through the step unchanged",
                i + 1,
                step.name,
                uncovered.join(", "),
                if uncovered.len() == 1 { "its" } else { "their" }
            ));
        }
    }
    notes
}

/// Steps that reduce each call's planes to one (a projection, a composite) but whose calls each
/// get one plane: every component they stack has one value there (a z projection of a plate
/// with one z-plane, or `variable_components = ["well"]`: a call never spans wells). The step
/// gives its planes back unchanged, which is seldom what its author meant.
pub fn one_plane_notes(pipeline: &Pipeline, flows: &[Flow], registry: &Registry) -> Vec<String> {
    let mut notes = Vec::new();
    for (i, (step, flow)) in pipeline.steps.iter().zip(flows).enumerate() {
        if step.func.has_dict() || pattern_planes(&step.func, registry) != PlaneCount::One {
            continue;
        }
        let reasons: Option<Vec<String>> = step
            .variable_components
            .iter()
            .map(|&c| match c {
                Component::Well => Some("a call never spans wells: each well runs on its own".to_string()),
                c => (count(&flow.values_in, c) == Some(1)).then(|| format!("{c} has one value at this step")),
            })
            .collect();
        let Some(reasons) = reasons else { continue };
        let what = match &step.func {
            FunctionPattern::Call(c) => format!("`{}`", c.name),
            _ => "the chain".to_string(),
        };
        let why = if reasons.is_empty() { "it stacks no component".to_string() } else { reasons.join("; ") };
        notes.push(format!(
            "step {} `{}`: {what} makes one plane of each call's planes, but each call gets one ({why}): the step gives its planes back unchanged",
            i + 1,
            step.name
        ));
    }
    notes
}

/// Dict keys that are not values of the routing component at their step.
pub fn check_dict_keys(
    pipeline: &Pipeline,
    flows: &[Flow],
    plate: &PlateInfo,
    registry: &Registry,
    source: Option<&SourceMap>,
) -> Vec<PipelineError> {
    let mut errors = Vec::new();
    for (i, (step, flow)) in pipeline.steps.iter().zip(flows).enumerate() {
        let Some((by, present)) = routed_values(step, flow, plate) else { continue };
        let mut keys = Vec::new();
        dict_keys(&step.func, &mut keys);
        // Groups without an entry pass through unchanged: fine when every entry keeps the planes
        // and their size, a ragged output otherwise (some groups projected or binned, others not).
        let reshapes = pattern_planes(&step.func, registry) != PlaneCount::Same
            || step.func.calls().iter().any(|(_, c)| {
                registry.variants(&c.name).first().is_some_and(|k| k.plane_shape == hcs_core::PlaneShape::Any)
            });
        let uncovered: Vec<&String> = present.iter().filter(|p| !keys.iter().any(|k| dict_key_matches(k, p))).collect();
        if reshapes && !uncovered.is_empty() {
            errors.push(PipelineError::Grouping {
                at: Line(source.and_then(|s| s.step_line(i))),
                step: StepRef { index: i + 1, name: step.name.clone() },
                message: format!(
                    "the dict has no entry for {by} {}; those groups would pass through unchanged while the entries change the planes' number or size, so the step's output would be ragged: give every {by} an entry",
                    uncovered.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        for key in keys {
            if present.iter().any(|p| dict_key_matches(&key, p)) {
                continue;
            }
            let note = flow.changed_by.get(&by).map(|&k| {
                let plate_values = plate.values.get(&by).map(|v| describe(v)).unwrap_or_default();
                format!("step {k} `{}` collapsed {by} (the plate has {plate_values})", pipeline.steps[k - 1].name)
            });
            errors.push(PipelineError::DictKey {
                at: Line(source.and_then(|s| s.step_line(i))),
                step: StepRef { index: i + 1, name: step.name.clone() },
                key,
                component: by,
                present: present.join(", "),
                note,
            });
        }
    }
    errors
}

/// A special input of a step linked to a producer that keeps one value per group
/// (`merge_outputs`): each group of the consumer takes the value of the producer's group with
/// its values of `by` (see [`check_producers`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerGroupLink {
    /// The consuming step (0-based).
    pub step: usize,
    /// The special key.
    pub key: String,
    /// The components the producer's groups differ in.
    pub by: Vec<Component>,
}

/// What [`check_producers`] found: the problems, and the special inputs that take one value per
/// group of a producer that merges its outputs.
#[derive(Debug, Default)]
pub struct Producers {
    /// Special outputs made by several calls without `merge_outputs`, and links that cannot be made.
    pub errors: Vec<PipelineError>,
    /// The per-group links, for the plan.
    pub per_group: Vec<PerGroupLink>,
}

/// A producer that keeps a special output per group: its step (1-based), the components its
/// groups differ in, and the values its groups have of each.
struct Merged {
    step: usize,
    by: Vec<(Component, Vec<u32>)>,
    /// A component whose values at the producer cannot be told before the run (an earlier
    /// `planes = any` step): which groups made a value is unknown.
    unknown: Option<Component>,
}

/// Components with their values, and whether those are known before the run.
type CallGroups = Vec<(Component, Vec<u32>, bool)>;

/// The components a producing call's groups differ in, with their values and whether they are
/// known: every component the step does not stack; the one a dict level routes, only at the
/// values its entry's key matches.
fn call_groups(step: &crate::pipeline::FunctionStep, flow: &Flow, entry: Option<&str>) -> CallGroups {
    let routed_by = step.group_by.filter(|_| entry.is_some());
    WELL_COMPONENTS
        .iter()
        .filter(|c| !step.variable_components.contains(c))
        .filter_map(|&c| {
            let values = flow.bound_in.get(&c)?;
            let values: Vec<u32> = match entry.filter(|_| routed_by == Some(c)) {
                Some(key) => values.iter().copied().filter(|v| dict_key_matches(key, &v.to_string())).collect(),
                None => values.clone(),
            };
            Some((c, values, flow.values_in.get(&c).is_some_and(Option::is_some)))
        })
        .collect()
}

/// Calls producing one key in one step (several dict entries may): their groups together.
fn union_groups(a: &mut CallGroups, b: CallGroups) {
    for (c, values, known) in b {
        match a.iter_mut().find(|(ac, _, _)| *ac == c) {
            Some((_, av, ak)) => {
                av.extend(values);
                av.sort_unstable();
                av.dedup();
                *ak &= known;
            }
            None => a.push((c, values, known)),
        }
    }
}

/// Special outputs made by more than one call per well without `merge_outputs`; `merge_outputs`
/// naming keys the step does not produce. A later step may read a merged output when each of
/// its calls stands in one group of the producer: it fixes every component the producer's
/// groups differ in (does not stack it), and has no value of them the producer lacks. A
/// stitching step then takes the tile positions of its own timepoint.
pub fn check_producers(
    pipeline: &Pipeline,
    flows: &[Flow],
    registry: &Registry,
    source: Option<&SourceMap>,
) -> Producers {
    let mut found = Producers::default();
    let errors = &mut found.errors;
    let mut merged: BTreeMap<&str, Merged> = BTreeMap::new();
    for (i, (step, flow)) in pipeline.steps.iter().zip(flows).enumerate() {
        let step_ref = StepRef { index: i + 1, name: step.name.clone() };
        let at = Line(source.and_then(|s| s.step_line(i)));
        let mut produced = Vec::new();
        let mut produced_by: BTreeMap<&str, CallGroups> = BTreeMap::new();
        for (k, (path, call)) in step.func.calls().into_iter().enumerate() {
            let Some(contract) = registry.variants(&call.name).first() else { continue };
            let call_at = Line(source.and_then(|s| s.call_line(i, k)).or(at.0));
            for input in contract.special_inputs {
                let Some(producer) = merged.get(input.key) else { continue };
                // Stacked with several values here: a call would hold several producer groups.
                let stacked: Vec<String> = producer
                    .by
                    .iter()
                    .filter(|(c, _)| {
                        step.variable_components.contains(c) && flow.bound_in.get(c).is_some_and(|v| v.len() > 1)
                    })
                    .map(|(c, _)| c.to_string())
                    .collect();
                let missing: Vec<String> = producer
                    .by
                    .iter()
                    .filter_map(|(c, made)| {
                        let here = flow.bound_in.get(c)?;
                        let absent: Vec<String> =
                            here.iter().filter(|v| !made.contains(v)).map(u32::to_string).collect();
                        (!absent.is_empty()).then(|| format!("{c} {}", absent.join(", ")))
                    })
                    .collect();
                let by = || producer.by.iter().map(|(c, _)| c.to_string()).collect::<Vec<_>>().join(" and ");
                if let Some(c) = producer.unknown {
                    errors.push(PipelineError::Special {
                        at: call_at,
                        step: step_ref.clone(),
                        message: format!(
                            "`{}` needs special input `{}`, kept by step {} one per group (`merge_outputs`), but which {c} values that step has cannot be told before the run{}, so no group of this step can be matched to one of it",
                            call.name,
                            input.key,
                            producer.step,
                            flows[producer.step - 1]
                                .changed_by
                                .get(&c)
                                .map_or_else(String::new, |k| format!(" (step {k} made them unknown)")),
                        ),
                    });
                } else if !stacked.is_empty() {
                    errors.push(PipelineError::Special {
                        at: call_at,
                        step: step_ref.clone(),
                        message: format!(
                            "`{}` needs special input `{}`, but step {} keeps one per {} (`merge_outputs`) and this step stacks {} (`variable_components`), so a call would need several; leave {} out of `variable_components`",
                            call.name,
                            input.key,
                            producer.step,
                            by(),
                            stacked.join(" and "),
                            stacked.join(" and "),
                        ),
                    });
                } else if !missing.is_empty() {
                    errors.push(PipelineError::Special {
                        at: call_at,
                        step: step_ref.clone(),
                        message: format!(
                            "`{}` needs special input `{}`, kept by step {} one per {} (`merge_outputs`), but that step has no group for {} that this step has",
                            call.name,
                            input.key,
                            producer.step,
                            by(),
                            missing.join("; "),
                        ),
                    });
                } else {
                    found.per_group.push(PerGroupLink {
                        step: i,
                        key: input.key.to_string(),
                        by: producer.by.iter().map(|(c, _)| *c).collect(),
                    });
                }
            }
            // Calls of this function per well: the non-variable components (one dict level routes
            // one value of `group_by` here); `None` when some count is unknowable.
            let routed_by = step.group_by.filter(|_| !path.is_empty());
            // A count an earlier `planes = any` step made unknown is taken at its most (the
            // values before that step): such a producer may run in several groups.
            let parts: Vec<(Component, usize, bool)> = WELL_COMPONENTS
                .iter()
                .filter(|c| !step.variable_components.contains(c) && Some(**c) != routed_by)
                .map(|&c| match count(&flow.values_in, c) {
                    Some(n) => (c, n, true),
                    None => (c, flow.bound_in.get(&c).map_or(1, Vec::len), false),
                })
                .filter(|(_, n, _)| *n > 1)
                .collect();
            let groups: usize = parts.iter().map(|(_, n, _)| n).product();
            let exact = parts.iter().all(|(_, _, known)| *known);
            let groups_here = call_groups(step, flow, path.first().copied());
            for output in contract.special_outputs {
                produced.push(output.key);
                union_groups(produced_by.entry(output.key).or_default(), groups_here.clone());
                if groups > 1 && !step.merge_outputs.iter().any(|m| m == output.key) {
                    let per = parts
                        .iter()
                        .map(|(c, n, known)| {
                            let changed = flow
                                .changed_by
                                .get(c)
                                .map_or(String::new(), |k| format!(", step {k} made the count unknown"));
                            if *known { format!("{n} {c} values") } else { format!("up to {n} {c} values{changed}") }
                        })
                        .collect::<Vec<_>>()
                        .join(" × ");
                    let up_to = if exact { "" } else { "up to " };
                    errors.push(PipelineError::MultiGroupProducer {
                        at: call_at,
                        step: step_ref.clone(),
                        function: call.name.clone(),
                        key: output.key.to_string(),
                        groups: format!("{up_to}{groups} groups per well ({per})"),
                    });
                }
            }
        }
        for key in produced.iter().filter(|k| !step.merge_outputs.iter().any(|m| m == *k)) {
            merged.remove(key);
        }
        for key in &step.merge_outputs {
            if let Some(groups) = produced_by.remove(key.as_str()) {
                // Only the components with several values tell the groups apart.
                let several: Vec<_> = groups.into_iter().filter(|(_, v, _)| v.len() > 1).collect();
                let unknown = several.iter().find(|(_, _, known)| !known).map(|(c, _, _)| *c);
                let by = several.into_iter().map(|(c, v, _)| (c, v)).collect();
                merged.insert(key.as_str(), Merged { step: i + 1, by, unknown });
            } else {
                errors.push(PipelineError::Special {
                    at,
                    step: step_ref.clone(),
                    message: crate::pipeline::wiring::merge_output_message(key).as_str().to_owned(),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_collapse_if_any_member_does_and_any_wins() {
        use PlaneCount::{Any, One, Same};
        assert_eq!(combine_chain(Same, Same), Same);
        assert_eq!(combine_chain(Same, One), One);
        assert_eq!(combine_chain(One, Same), One);
        assert_eq!(combine_chain(One, Any), Any);
        assert_eq!(combine_chain(Any, Same), Any);
    }

    #[test]
    fn the_plate_values_start_the_flow() {
        let plate = PlateInfo::regular("/p", 1, 2, (2, 3), 4, 5, 1, (8, 8));
        let v = plate_values(&plate);
        assert_eq!(v[&Component::Site], Some((1..=6).collect()));
        assert_eq!(count(&v, Component::Channel), Some(4));
        assert_eq!(count(&v, Component::Z), Some(5));
        assert_eq!(count(&v, Component::Well), None, "wells are not a within-well component");
    }
}
