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
use crate::pipeline::{InputSource, Line, Pipeline, PipelineError, SourceMap, StepRef, broken_rule, params_valid};

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
    let mut out = Findings::default();
    let sites = plate.grid.map(|(r, c)| r as usize * c as usize);
    let plate_geo =
        Geo { shape: plate.tile_shape, planes: None, sites, why: "the plate does not say its image size".into() };
    let mut after_step = plate_geo.clone();
    for (i, (step, flow)) in pipeline.steps.iter().zip(flows).enumerate() {
        let input = if i == 0 || init.steps.get(i).is_some_and(|s| s.input_source == InputSource::PipelineStart) {
            plate_geo.clone()
        } else {
            after_step.clone()
        };
        let planes =
            step.variable_components.iter().try_fold(1usize, |acc, c| count(&flow.values_in, *c).map(|n| acc * n));
        let step_in = Geo { planes, ..input };
        let step_ref = StepRef { index: i + 1, name: step.name.clone() };
        let limit_config = init.steps.get(i).map(|s| &s.config);
        // Geometry flowing along the pattern: a chain passes each call's output to the next;
        // each dict entry starts from what flows into the dict (after the calls on its path's
        // prefix).
        let mut after_path: Vec<(Vec<&str>, Geo)> = vec![(Vec::new(), step_in.clone())];
        let mut shape_changed = None;
        for (k, (path, call)) in step.func.calls().into_iter().enumerate() {
            let Some(contract) = registry.variants(&call.name).first() else { continue };
            let geo = after_path
                .iter()
                .rev()
                .find(|(p, _)| path.starts_with(p))
                .map_or_else(|| step_in.clone(), |(_, g)| g.clone());
            let at = Line(source.and_then(|s| s.call_line(i, k)).or_else(|| source.and_then(|s| s.step_line(i))));
            let site = Site { step: &step_ref, function: &call.name, at };
            if params_valid(contract, &call.params) {
                let limit = limit_bytes(registry, &call.name, limit_config, gpus);
                check_call(contract, &call.params, &geo, limit, &site, &mut out);
            }
            let next = geo.after(contract, &step_ref, &call.name);
            if contract.plane_shape == PlaneShape::Any {
                shape_changed.get_or_insert_with(|| call.name.clone());
            }
            after_path.push((path, next));
        }
        after_step = match shape_changed {
            Some(name) => Geo {
                shape: None,
                planes: None,
                sites,
                why: format!("step {} `{}` changes the image size with `{name}`", i + 1, step.name),
            },
            None => step_in,
        };
    }
    (out.errors, out.notes)
}

/// The image geometry at a point of the pipeline; `why` says why a part is unknown.
#[derive(Clone, Debug)]
struct Geo {
    shape: Option<(usize, usize)>,
    planes: Option<usize>,
    sites: Option<usize>,
    why: String,
}

impl Geo {
    /// The geometry after a call of `contract`.
    fn after(&self, contract: &FunctionContract, step: &StepRef, name: &str) -> Geo {
        let mut next = self.clone();
        if contract.plane_shape == PlaneShape::Any {
            next.shape = None;
            next.why = format!("{step}: `{name}` changes the image size");
        }
        match contract.output_planes {
            hcs_core::PlaneCount::Same => {}
            hcs_core::PlaneCount::One => next.planes = Some(1),
            hcs_core::PlaneCount::Any => next.planes = None,
        }
        next
    }
}

/// Where a call is, for messages.
struct Site<'a> {
    step: &'a StepRef,
    function: &'a str,
    at: Line,
}

#[derive(Default)]
struct Findings {
    errors: Vec<PipelineError>,
    notes: Vec<String>,
}

/// One call's image rules and memory estimate on `geo`: errors for what fails, notes for what
/// the geometry cannot decide.
fn check_call(
    contract: &FunctionContract,
    params: &ParamMap,
    geo: &Geo,
    limit: (f64, String),
    site: &Site<'_>,
    out: &mut Findings,
) {
    let image = geo.shape.map(|(height, width)| ImageGeometry { height, width, planes: geo.planes, sites: geo.sites });
    // For rules that do not read the plane size, the size may be unknown.
    let sizeless = ImageGeometry { height: 0, width: 0, planes: geo.planes, sites: geo.sites };
    if let Some(image) = &image
        && let Some(over) = over_budget(contract, params, image, limit)
    {
        out.errors.push(PipelineError::OverBudget {
            at: site.at,
            step: site.step.clone(),
            function: site.function.to_string(),
            message: over,
        });
    }
    for rule in contract.checks.iter().filter(|c| c.needs_image) {
        // A rule is decided when what it reads is known: the plane size, the plane count.
        let reads_size = rule.rule.contains("image.height") || rule.rule.contains("image.width");
        let reads_planes = rule.rule.contains("image.planes");
        let decidable = if reads_size { image } else { Some(sizeless) }.filter(|i| i.planes.is_some() || !reads_planes);
        match decidable {
            Some(image) => {
                if let Some(broken) = broken_rule(contract, rule, params, Some(&image)) {
                    out.errors.push(PipelineError::BrokenRule {
                        at: site.at,
                        step: site.step.clone(),
                        function: site.function.to_string(),
                        params: if reads_size {
                            format!("{} on {}×{} images", broken.params, image.width, image.height)
                        } else {
                            format!(
                                "{} on {} planes per call",
                                broken.params,
                                image.planes.map_or("?".into(), |p| p.to_string())
                            )
                        },
                        rule: broken.rule,
                    });
                }
            }
            None => {
                let why =
                    if image.is_some() || !reads_size { "the plane count is not known here" } else { geo.why.as_str() };
                out.notes.push(format!(
                    "{}: `{}`: cannot check `{}` before the run ({why}); the function checks it on each call",
                    site.step, site.function, rule.rule
                ));
            }
        }
    }
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
            let values = crate::pipeline::describe_values(contract, estimate.params, params);
            let what = if values.is_empty() { String::new() } else { format!("{values} ") };
            (need, format!("with {what}on {}×{} images (`{}`)", image.width, image.height, estimate.expr))
        }
        None => (
            DEFAULT_PEAK_FACTOR * input_bytes(image),
            format!("({DEFAULT_PEAK_FACTOR} × its input of {}×{} images)", image.width, image.height),
        ),
    };
    (need > limit).then(|| format!("needs ~{:.0} MiB per call {because}, over {limit_text}", need / MIB))
}
