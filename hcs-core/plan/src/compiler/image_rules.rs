//! Phase 1b: the `#[check]` rules that read `image` and the memory each call needs
//! (`#[peak_memory]`, or 3 × its input), evaluated on the geometry each step receives.
//!
//! The geometry starts as the plate's tile shape, is reset to it by a step that reads the
//! pipeline's input, and becomes unknown after a step whose function changes the plane size
//! (`#[memory(.., xy = any)]`: binning, cropping, mosaics). A rule that reads `image` where the
//! geometry is unknown cannot be decided before the run: it is reported as a note (the kernel
//! still refuses bad values at run time), never silently passed.

use hcs_core::registry::Registry;
use hcs_core::rules::{DEFAULT_PEAK_FACTOR, input_bytes};
use hcs_core::{FunctionContract, GpuInventory, ImageGeometry, ParamMap, PlaneShape};

use super::components::{Flow, count};
use super::init::Init;
use super::plate_info::PlateInfo;
use crate::pipeline::{InputSource, Line, Pipeline, PipelineError, SourceMap, StepRef, broken_rules};

/// Errors for rules the geometry breaks, and notes for rules it cannot decide.
pub fn check(
    pipeline: &Pipeline,
    registry: &Registry,
    plate: &PlateInfo,
    init: &Init,
    flows: &[Flow],
    gpus: &GpuInventory,
    source: Option<&SourceMap>,
) -> (Vec<PipelineError>, Vec<String>) {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut shape = plate.tile_shape;
    let mut why_unknown: Option<String> = None;
    for (i, (step, flow)) in pipeline.steps.iter().zip(flows).enumerate() {
        if i == 0 || init.steps.get(i).is_some_and(|s| s.input_source == InputSource::PipelineStart) {
            shape = plate.tile_shape;
            why_unknown = None;
        }
        let planes = step
            .variable_components
            .iter()
            .try_fold(1usize, |acc, c| count(&flow.values_in, *c).map(|n| acc * n));
        let image = shape.map(|(height, width)| ImageGeometry { height, width, planes });
        let step_ref = StepRef { index: i + 1, name: step.name.clone() };
        let mut changes_shape = None;
        for (k, (_, call)) in step.func.calls().into_iter().enumerate() {
            let Some(contract) = registry.variants(&call.name).first() else { continue };
            if contract.plane_shape == PlaneShape::Any {
                changes_shape.get_or_insert_with(|| call.name.clone());
            }
            let at = Line(source.and_then(|s| s.call_line(i, k)).or_else(|| source.and_then(|s| s.step_line(i))));
            match &image {
                Some(image) => {
                    let limit = limit_bytes(registry, &call.name, init.steps.get(i).map(|s| &s.config), gpus);
                    if let Some(over) = over_budget(contract, &call.params, image, limit) {
                        errors.push(PipelineError::OverBudget {
                            at,
                            step: step_ref.clone(),
                            function: call.name.clone(),
                            message: over,
                        });
                    }
                    for broken in broken_rules(contract, &call.params, Some(image)).into_iter() {
                        errors.push(PipelineError::BrokenRule {
                            at,
                            step: step_ref.clone(),
                            function: call.name.clone(),
                            params: format!("{} on {}×{} images", broken.params, image.width, image.height),
                            rule: broken.rule,
                        });
                    }
                }
                None => {
                    for rule in contract.checks.iter().filter(|c| c.needs_image) {
                        let why = why_unknown.as_deref().unwrap_or("the plate does not say its image size");
                        notes.push(format!(
                            "{step_ref}: `{}`: cannot check `{}` before the run ({why}); the function checks it on each call",
                            call.name, rule.rule
                        ));
                    }
                }
            }
        }
        if let Some(name) = changes_shape {
            shape = None;
            why_unknown = Some(format!("step {} `{}` changes the image size with `{name}`", i + 1, step.name));
        }
    }
    (errors, notes)
}

/// The most one call may use: `memory_budget_mib`, or less when the function has a GPU variant
/// the policy may pick and the smallest GPU has less memory.
fn limit_bytes(
    registry: &Registry,
    name: &str,
    config: Option<&crate::pipeline::Config>,
    gpus: &GpuInventory,
) -> (f64, String) {
    let budget_mib = config.map_or(4096, |c| c.memory_budget_mib);
    let budget = (budget_mib as f64 * MIB, format!("memory_budget_mib = {budget_mib}"));
    let may_use_gpu = config.is_some_and(|c| c.gpu_policy != crate::pipeline::GpuPolicy::Never)
        && registry.variants(name).iter().any(|v| v.input_memory.is_gpu_capable());
    let smallest = gpus.devices.iter().map(|d| d.memory_mib).min().filter(|_| may_use_gpu);
    match smallest {
        Some(mib) if (mib as f64 * MIB) < budget.0 => (mib as f64 * MIB, format!("the {mib} MiB of the smallest GPU")),
        _ => budget,
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The message when one call of `contract` needs more than `limit`, naming what the estimate
/// reads.
fn over_budget(
    contract: &FunctionContract,
    params: &ParamMap,
    image: &ImageGeometry,
    (limit, limit_text): (f64, String),
) -> Option<String> {
    let (need, because) = match &contract.peak_memory {
        Some(estimate) => {
            let need = (estimate.eval)(params, Some(image)).ok().flatten()?;
            let values: Vec<String> = estimate
                .params
                .iter()
                .map(|name| {
                    let value = params.get(*name).cloned().or_else(|| contract.param(name).and_then(|p| p.default.map(|d| d())));
                    value.map_or_else(|| (*name).to_string(), |v| format!("{name} = {v}"))
                })
                .collect();
            let what = if values.is_empty() { String::new() } else { format!("{} ", values.join(", ")) };
            (need, format!("with {what}on {}×{} images (`{}`)", image.width, image.height, estimate.expr))
        }
        None => (
            DEFAULT_PEAK_FACTOR * input_bytes(image),
            format!("({DEFAULT_PEAK_FACTOR} × its input of {}×{} images)", image.width, image.height),
        ),
    };
    (need > limit).then(|| format!("needs ~{:.0} MiB per call {because}, over {limit_text}", need / MIB))
}
