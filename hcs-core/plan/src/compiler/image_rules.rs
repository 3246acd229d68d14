//! Phase 1b: the `#[check]` rules that read `image` and the memory each call needs
//! (`#[peak_memory]`, or 3 × its input), evaluated on the geometry each step receives.
//!
//! The geometry starts as the plate's tile shape, is reset to it by a step that reads the
//! pipeline's input, and follows each call's `#[output_shape]` (binning, cropping); it becomes
//! unknown after a call that changes the size without declaring it (a mosaic). It flows one
//! dict group at a time: a group gets the calls outside any dict and its own entry's. A rule
//! that reads `image` where the geometry is unknown cannot be decided before the run: it is
//! reported as a note (the kernel still refuses bad values at run time), never silently passed.
//! Groups of one step that return (or may return) planes of different sizes are refused when a
//! later step or a zarr store reads the step's planes as one stack.
//!
//! The pixel size flows the same way: 1 plate pixel at the start, multiplied by each call's
//! `#[pixel_scale]` (binning); unknown where a factor reads an unknown geometry or dict entries
//! disagree — so outputs are calibrated with the pixel size they really have.

use hcs_core::registry::Registry;
use hcs_core::rules::{DEFAULT_PEAK_FACTOR, input_bytes};
use hcs_core::{FunctionContract, GpuInventory, ImageGeometry, ParamMap, PlaneShape};

use super::components::{Flow, per_call};
use super::init::Init;
use super::plate_info::PlateInfo;
use crate::pipeline::{InputSource, Line, Pipeline, PipelineError, SourceMap, StepRef, broken_rule, params_valid};

/// What phase 1b found: errors for rules the geometry breaks, notes for rules it cannot decide,
/// and per step the size of an output pixel in plate pixels (`None`: unknown).
pub struct Findings1b {
    /// Rules broken.
    pub errors: Vec<PipelineError>,
    /// Rules that cannot be decided before the run.
    pub notes: Vec<String>,
    /// Per step, the output pixel size in plate pixels.
    pub scales: Vec<Option<f64>>,
    /// Per step, where the output's first pixel lies, `(y, x)` in plate pixels.
    pub origins: Vec<Option<(f64, f64)>>,
}

/// Errors for rules the geometry breaks, notes for rules it cannot decide, and the pixel scale
/// of every step's output.
pub fn check(
    pipeline: &Pipeline,
    registry: &Registry,
    plate: &PlateInfo,
    init: &Init,
    flows: &[Flow],
    gpus: &GpuInventory,
    source: Option<&SourceMap>,
) -> Findings1b {
    let mut out = Findings::default();
    let mut scales = Vec::with_capacity(pipeline.steps.len());
    let mut origins = Vec::with_capacity(pipeline.steps.len());
    let sites = plate.grid.map(|(r, c)| r as usize * c as usize);
    let plate_geo = Geo {
        shape: plate.tile_shape,
        planes: None,
        sites,
        scale: Some(1.0),
        origin: Some((0.0, 0.0)),
        why: "the plate does not say its image size".into(),
    };
    let mut after_step = plate_geo.clone();
    for (i, (step, flow)) in pipeline.steps.iter().zip(flows).enumerate() {
        let input = if i == 0 || init.steps.get(i).is_some_and(|s| s.input_source == InputSource::PipelineStart) {
            plate_geo.clone()
        } else {
            after_step.clone()
        };
        let planes =
            step.variable_components.iter().try_fold(1usize, |acc, c| per_call(&flow.values_in, *c).map(|n| acc * n));
        let step_in = Geo { planes, ..input };
        let step_ref = StepRef { index: i + 1, name: step.name.clone() };
        let limit_config = init.steps.get(i).map(|s| &s.config);
        // Geometry flowing along the pattern, one group at a time: a group of a dict gets the
        // calls outside any dict and those of its own entry, in pattern order.
        let calls = step.func.calls();
        let groups = group_paths(&step.func);
        let mut outputs: Vec<(Vec<&str>, Geo, Vec<String>)> = Vec::with_capacity(groups.len());
        for group in groups {
            let mut geo = step_in.clone();
            let mut resizing = Vec::new();
            for (k, (_, call)) in calls.iter().enumerate().filter(|(_, (p, _))| group.starts_with(p)) {
                let Some(contract) = registry.variants(&call.name).first() else { continue };
                let at = Line(source.and_then(|s| s.call_line(i, k)).or_else(|| source.and_then(|s| s.step_line(i))));
                let site = Site { step: &step_ref, function: &call.name, at };
                // The declared output size is only evaluated on values its own rules accept.
                let errors_before = out.errors.len();
                let mut valid = params_valid(contract, &call.params);
                if valid {
                    let limit = limit_bytes(registry, &call.name, limit_config, gpus);
                    check_call(contract, &call.params, &geo, limit, &site, &mut out);
                    valid = out.errors.len() == errors_before;
                }
                if contract.plane_shape == PlaneShape::Any || contract.output_shape.is_some() {
                    resizing.push(format!("`{}` {:?}", call.name, with_defaults(contract, &call.params)));
                }
                geo = geo.after(contract, valid.then_some(&call.params), &step_ref, &call.name);
            }
            outputs.push((group, geo, resizing));
        }
        let reread = stacked_later(pipeline, init, i) || writes_zarr(pipeline, init, i);
        if let Some(message) = ragged(&outputs).filter(|_| reread) {
            out.errors.push(PipelineError::Grouping {
                at: Line(source.and_then(|s| s.step_line(i))),
                step: step_ref.clone(),
                message,
            });
        }
        let shapes: Vec<Option<(usize, usize)>> = outputs.iter().map(|(_, g, _)| g.shape).collect();
        let agreed = shapes.first().copied().flatten().filter(|s| shapes.iter().all(|x| *x == Some(*s)));
        let resized = outputs.iter().any(|(_, _, r)| !r.is_empty());
        let group_scales: Vec<Option<f64>> = outputs.iter().map(|(_, g, _)| g.scale).collect();
        let scale = group_scales.first().copied().flatten().filter(|s| group_scales.iter().all(|x| *x == Some(*s)));
        scales.push(scale);
        let group_origins: Vec<Option<(f64, f64)>> = outputs.iter().map(|(_, g, _)| g.origin).collect();
        let origin = group_origins.first().copied().flatten().filter(|o| group_origins.iter().all(|x| *x == Some(*o)));
        origins.push(origin);
        after_step = match (resized, agreed) {
            (false, _) => Geo { planes: None, scale, origin, ..step_in },
            (true, Some(shape)) => Geo { shape: Some(shape), planes: None, sites, scale, origin, why: String::new() },
            (true, None) => {
                let why = outputs.iter().find(|(_, g, _)| g.shape.is_none()).map_or_else(
                    || format!("the entries of step {} `{}` change the image size differently", i + 1, step.name),
                    |(_, g, _)| g.why.clone(),
                );
                Geo { shape: None, planes: None, sites, scale, origin, why }
            }
        };
    }
    // A call outside the dict is checked once per group: report each finding once.
    let mut seen = Vec::with_capacity(out.notes.len());
    out.notes.retain(|n| {
        let new = !seen.contains(n);
        if new {
            seen.push(n.clone());
        }
        new
    });
    Findings1b { errors: out.errors, notes: out.notes, scales, origins }
}

/// The image geometry at a point of the pipeline; `why` says why a part is unknown.
#[derive(Clone, Debug)]
struct Geo {
    shape: Option<(usize, usize)>,
    planes: Option<usize>,
    sites: Option<usize>,
    /// Size of a pixel in plate pixels (`None`: unknown).
    scale: Option<f64>,
    /// Where the first pixel lies, `(y, x)` in plate pixels (`None`: unknown).
    origin: Option<(f64, f64)>,
    why: String,
}

impl Geo {
    /// The geometry after a call of `contract` (`params`: its parameters, when valid).
    fn after(&self, contract: &FunctionContract, params: Option<&ParamMap>, step: &StepRef, name: &str) -> Geo {
        let mut next = self.clone();
        // What the contract's expressions see as `image` (`None` where the size is unknown).
        let image =
            self.shape.map(|(height, width)| ImageGeometry { height, width, planes: self.planes, sites: self.sites });
        let declared = contract.output_shape.zip(params).and_then(|(shape, params)| {
            (shape.eval)(params, image.as_ref()).ok().flatten().filter(|g| g.height > 0 && g.width > 0)
        });
        if let Some(origin) = contract.pixel_origin {
            let o = params.and_then(|params| (origin.eval)(params, image.as_ref()).ok().flatten());
            let o = o.filter(|(y, x)| y.is_finite() && x.is_finite());
            // The offset is in input pixels, which are `scale` plate pixels each.
            next.origin = self.origin.zip(self.scale).zip(o).map(|((at, s), (y, x))| (at.0 + y * s, at.1 + x * s));
        }
        if let Some(factor) = contract.pixel_scale {
            let f = params.and_then(|params| (factor.eval)(params, image.as_ref()).ok().flatten());
            next.scale = self.scale.zip(f.filter(|f| f.is_finite() && *f > 0.0)).map(|(s, f)| s * f);
        }
        // Offsets after an unknown scale count pixels of unknown size: the origin is lost too.
        if next.scale.is_none() {
            next.origin = None;
        }
        if let Some(g) = declared {
            next.shape = Some((g.height, g.width));
            next.planes = g.planes;
        } else if contract.plane_shape == PlaneShape::Any || contract.output_shape.is_some() {
            next.shape = None;
            next.why = format!("{step}: `{name}` changes the image size");
        }
        if declared.is_some() && contract.output_planes == hcs_core::PlaneCount::Any {
            return next;
        }
        match contract.output_planes {
            hcs_core::PlaneCount::Same => {}
            hcs_core::PlaneCount::One => next.planes = Some(1),
            hcs_core::PlaneCount::Any => next.planes = None,
        }
        next
    }
}

/// The groups a pattern routes planes into, as dict-key paths: every dict entry's path that no
/// other entry's path extends (`[]` alone when it has no dict; an entry without calls is a group
/// too). A group runs the calls whose path is a prefix of its own.
fn group_paths(pattern: &crate::pipeline::FunctionPattern) -> Vec<Vec<&str>> {
    fn walk<'a>(p: &'a crate::pipeline::FunctionPattern, path: &mut Vec<&'a str>, out: &mut Vec<Vec<&'a str>>) {
        match p {
            crate::pipeline::FunctionPattern::Call(_) => {}
            crate::pipeline::FunctionPattern::Chain(members) => members.iter().for_each(|m| walk(m, path, out)),
            crate::pipeline::FunctionPattern::Dict(entries) => {
                for (k, v) in entries {
                    path.push(k);
                    out.push(path.clone());
                    walk(v, path, out);
                    path.pop();
                }
            }
        }
    }
    let mut paths = Vec::new();
    walk(pattern, &mut Vec::new(), &mut paths);
    let leaves: Vec<Vec<&str>> =
        paths.iter().filter(|p| !paths.iter().any(|q| q.len() > p.len() && q.starts_with(p))).cloned().collect();
    if leaves.is_empty() { vec![Vec::new()] } else { leaves }
}

/// A call's parameters with the defaults filled in (two spellings of one call compare equal).
fn with_defaults(contract: &FunctionContract, params: &ParamMap) -> ParamMap {
    let mut all = params.clone();
    for spec in contract.params {
        if let (false, Some(default)) = (all.contains_key(spec.name), spec.default) {
            all.insert(spec.name.to_string(), default());
        }
    }
    all
}

/// Whether a step after `i` (before one that reads the pipeline's input again) stacks planes
/// that step `i`'s dict routed to different entries — one of its calls then receives planes of
/// each entry's size — or writes them to one OME-Zarr well. A dict by well never does (each
/// well is its own run, with its own plane size in a store).
fn stacked_later(pipeline: &Pipeline, init: &Init, i: usize) -> bool {
    let Some(by) = pipeline.steps[i].group_by.filter(|c| *c != hcs_plate::Component::Well) else { return false };
    for (j, later) in pipeline.steps.iter().enumerate().skip(i + 1) {
        if init.steps.get(j).is_some_and(|s| s.input_source == InputSource::PipelineStart) {
            return false;
        }
        if later.variable_components.contains(&by) || zarr_at(init, j) {
            return true;
        }
    }
    false
}

/// Whether step `i` writes an OME-Zarr store (output, checkpoint or preview), whose wells hold
/// planes of one size, from a dict that is not by well.
fn writes_zarr(pipeline: &Pipeline, init: &Init, i: usize) -> bool {
    if pipeline.steps[i].group_by == Some(hcs_plate::Component::Well) {
        return false; // every well of a store has its own plane size
    }
    zarr_at(init, i)
}

/// Whether step `i` writes an OME-Zarr store: the final output, a checkpoint or a preview.
fn zarr_at(init: &Init, i: usize) -> bool {
    let last = i + 1 == init.steps.len();
    let zarr = |l: &super::plan::Location| matches!(l, super::plan::Location::Zarr { .. });
    init.steps.get(i).is_some_and(|s| {
        (last && zarr(&init.final_location))
            || s.checkpoint.as_ref().is_some_and(|c| zarr(&c.location))
            || s.config.visualize
    })
}

/// Why the groups of a step return planes of different sizes, if they do or may: a later step
/// (or a zarr store) takes a well's planes as one stack.
fn ragged(outputs: &[(Vec<&str>, Geo, Vec<String>)]) -> Option<String> {
    let [(first_path, first, first_resizing), rest @ ..] = outputs else { return None };
    let entry = |p: &[&str]| if p.is_empty() { "the step".to_string() } else { format!("entry \"{}\"", p.join("/")) };
    let size = |g: &Geo| g.shape.map_or("a size known only at run time".to_string(), |(h, w)| format!("{w}×{h}"));
    for (path, geo, resizing) in rest {
        let known_apart = matches!((first.shape, geo.shape), (Some(a), Some(b)) if a != b);
        let maybe_apart = (first.shape.is_none() || geo.shape.is_none()) && resizing != first_resizing;
        if known_apart || maybe_apart {
            let verb = if known_apart {
                "return planes of different sizes"
            } else {
                "change the image size differently, and the compiler cannot tell whether the sizes agree"
            };
            return Some(format!(
                "the dict's entries {verb}: {} → {}, {} → {}; the step's output is read as one stack (by the next step or an OME-Zarr store): give every entry the same size",
                entry(first_path),
                size(first),
                entry(path),
                size(geo)
            ));
        }
    }
    None
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
                        params: {
                            let on = if reads_size {
                                format!("on {}×{} images", image.width, image.height)
                            } else {
                                match image.planes {
                                    Some(1) => "on 1 plane per call".to_string(),
                                    planes => {
                                        format!("on {} planes per call", planes.map_or("?".into(), |p| p.to_string()))
                                    }
                                }
                            };
                            // A rule on the site grid says what the grid holds (the plate's
                            // metadata may announce more sites than the images have).
                            let on = match image.sites.filter(|_| rule.rule.contains("image.sites")) {
                                Some(sites) => format!("{on}, in a site grid of {sites}"),
                                None => on,
                            };
                            if broken.params.is_empty() { on } else { format!("{} {on}", broken.params) }
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
    if limit <= 0.0 {
        // `memory_budget_mib = 0` is refused by the configuration check: no second error.
        return None;
    }
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
