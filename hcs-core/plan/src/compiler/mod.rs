//! The pipeline compiler: a pipeline and a plate in, one frozen plan per well out — or every
//! problem found, each naming its step (and file line).
//!
//! Plate-level work runs once; each well is then a small delta (its checkpoint filter, its
//! special-output file names, its GPU), and wells are expanded in parallel.
//!
//! | phase | module | decides |
//! | --- | --- | --- |
//! | checks | [`crate::pipeline::check`] | functions, parameters, special-I/O order, well filters |
//! | 1 step-plan initialization | [`init`], [`components`] | configuration layers, input sources, output locations, special-input links, plate-supplied inputs, component values per step (dict keys, calls per well) |
//! | 1b image rules | [`image_rules`] | `#[check]` rules on the image size each step receives |
//! | 2 zarr store declaration | [`zarr`] | the OME-Zarr stores to create |
//! | 3 materialization planning | [`materialize`] | read/write backend per step, memory budget |
//! | 4 memory-contract validation | [`variants`] | variant per call, parameters, memory conversions |
//! | 4b well partitioning | [`partition`] | runs of steps taken one channel (or site, z, …) at a time |
//! | 5 GPU resource assignment | [`gpu`] | a device per GPU step and well |
//! | freeze | [`plan`] | immutable, serializable [`FrozenWellPlan`]s |

pub mod components;
pub mod fallback;
pub mod gpu;
pub mod image_rules;
pub mod init;
pub mod materialize;
pub mod partition;
pub mod plan;
pub mod plate_info;
pub mod reuse;
pub mod sample_range;
pub mod special_scale;
pub mod variants;
pub mod zarr;

use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::pipeline::{
    ConfigLayer, GpuPolicy, Pipeline, PipelineError, SourceMap, check_functions, check_special_io, check_wells,
};
use hcs_core::registry::Registry;
use hcs_core::stack::MemoryType;
use hcs_plate::WellId;

pub use hcs_core::Conversion;
pub use hcs_core::{GpuDevice, GpuInventory};
pub use plan::{
    ComponentValues, FrozenWellPlan, GpuAssignment, Location, PreviewPlan, ResolvedCall, ResolvedPattern, Segment,
    SharedResult, SpecialInputPlan, SpecialOutputPlan, StepCommon, StepPlan, WellPlan, ZarrStorePlan,
};
pub use plate_info::PlateInfo;
pub use variants::ConversionTable;

/// What the compiler is given besides the pipeline and the plate.
#[derive(Clone, Debug)]
pub struct CompileOptions<'a> {
    /// The functions.
    pub registry: &'a Registry,
    /// The global configuration layer (under the pipeline's `[config]`).
    pub global: ConfigLayer,
    /// Run overrides (command-line flags): over the pipeline's `[config]`, under step layers.
    pub overrides: ConfigLayer,
    /// The GPUs to assign.
    pub gpus: GpuInventory,
    /// The memory conversions available.
    pub conversions: ConversionTable,
    /// Compile only these wells (all when `None`).
    pub wells: Option<Vec<WellId>>,
    /// File lines for messages, when the pipeline came from a file.
    pub source: Option<&'a SourceMap>,
}

impl<'a> CompileOptions<'a> {
    /// Defaults for `registry`: no global layer, no GPU, this build's conversions. The compiler
    /// never probes hardware: a caller that plans for this machine sets `gpus` to what
    /// `hcs_device::detect()` found.
    pub fn new(registry: &'a Registry) -> Self {
        Self {
            registry,
            global: ConfigLayer::default(),
            overrides: ConfigLayer::default(),
            gpus: GpuInventory::none(),
            conversions: ConversionTable::built_in(),
            wells: None,
            source: None,
        }
    }
}

/// The compiled plate: one frozen plan per well.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompiledPlate {
    /// The pipeline's name.
    pub pipeline: String,
    /// The input plate.
    pub plate: PathBuf,
    /// The output plate folder.
    pub output_root: PathBuf,
    /// The run's results folder (its report, log and trace): the output's `results/`, or the
    /// `results_folder` of `[config]`, a global configuration file or the command line. A
    /// step's own `results_folder` places only that step's special outputs. Empty in a plan
    /// written before it was recorded (then the first step's folder, as such runs used).
    #[serde(default)]
    pub results_dir: PathBuf,
    /// Viewers needed for the steps' previews (`visualize = true`), if any.
    pub viewers: Vec<String>,
    /// Per well, in well order.
    pub wells: Vec<FrozenWellPlan>,
    /// What the compiler could not decide before the run (e.g. a rule on the image size after a
    /// step that changes it): shown by `hcs check` and `hcs run`.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl CompiledPlate {
    /// The plan of one well.
    pub fn well(&self, well: WellId) -> Option<&FrozenWellPlan> {
        self.wells.iter().find(|p| p.well == well)
    }

    /// Whether stitching that fell back to the nominal grid fails the run
    /// (`on_stitch_fallback = "fail"`), when the tile positions came from step `step` (1-based):
    /// that step and every step that reads its special outputs decide, each by its resolved
    /// setting (a step's own over the pipeline's); `fail` on one of them is enough. Which step
    /// placed the tiles is what the run found ([`WellPlan::materialized_outputs`] names its
    /// files), so no key or function name is assumed. A step this plan does not hold (a report
    /// from another plan) leaves the decision to every step: any `fail` decides.
    pub fn fails_on_stitch_fallback_at(&self, step: usize) -> bool {
        let steps = || self.wells.iter().flat_map(|w| &w.steps);
        let reads_from = |s: &StepPlan| {
            s.special_inputs.values().any(|i| matches!(i, SpecialInputPlan::Step { step: from, .. } if *from == step))
        };
        let fails = |s: &StepPlan| s.config.on_stitch_fallback == crate::pipeline::FallbackPolicy::Fail;
        if steps().any(|s| s.index == step) {
            steps().filter(|s| s.index == step || reads_from(s)).any(fails)
        } else {
            steps().any(fails)
        }
    }
}

/// Compile `pipeline` for `plate`. Every problem found is returned, in pipeline order.
pub fn compile(
    pipeline: &Pipeline,
    plate: &PlateInfo,
    options: &CompileOptions<'_>,
) -> Result<CompiledPlate, Vec<PipelineError>> {
    let registry = options.registry;
    let source = options.source;
    let mut errors = check_all(pipeline, plate, options);
    let wells = select_wells(plate, options.wells.as_deref(), &mut errors);

    // Phase 1.
    let (mut init, init_errors) =
        init::initialize(pipeline, plate, registry, [&options.global, &options.overrides], source);
    errors.extend(init_errors);
    let sources: Vec<_> = init.steps.iter().map(|s| s.input_source).collect();
    let flows = components::flow(pipeline, plate, registry, &sources);
    errors.extend(components::check_dict_keys(pipeline, &flows, plate, registry, source));
    let mut pass_through = components::pass_through_notes(pipeline, &flows, plate);
    pass_through.extend(components::one_plane_notes(pipeline, &flows, registry));
    let producers = components::check_producers(pipeline, &flows, registry, source);
    errors.extend(producers.errors);
    for link in producers.per_group {
        if let Some(SpecialInputPlan::Step { by, .. }) =
            init.steps.get_mut(link.step).and_then(|s| s.special_inputs.get_mut(&link.key))
        {
            *by = link.by;
        }
    }
    let image_rules::Findings1b { errors: rule_errors, mut notes, scales, origins } =
        image_rules::check(pipeline, registry, plate, &init, &flows, &options.gpus, source);
    notes.extend(pass_through);
    errors.extend(rule_errors);
    let (scale_errors, scale_notes) = special_scale::check(pipeline, registry, &init, &scales, source);
    errors.extend(scale_errors);
    notes.extend(scale_notes);
    // Said once, at the first step whose pixel size is lost: later steps inherit it.
    if let Some(i) = scales.iter().position(Option::is_none) {
        notes.push(format!(
            "step {} `{}`: the pixel size of its output cannot be told before the run (a `#[pixel_scale]` reads what is unknown, or dict entries scale differently): this and later outputs carry no physical calibration",
            i + 1,
            pipeline.steps[i].name
        ));
    }
    if let Some(i) = origins.iter().position(Option::is_none) {
        notes.push(format!(
            "step {} `{}`: where its output lies in the plate's pixels cannot be told before the run (a `#[pixel_origin]` or `#[pixel_scale]` reads what is unknown, or dict entries differ): this and later outputs carry no translation",
            i + 1,
            pipeline.steps[i].name
        ));
    }
    // Phase 2.
    // An OME-Zarr store is laid out for every well of the plate, whichever this run does: a
    // run of some wells (`--wells`) into a store holding the others keeps them in its plate
    // metadata (which lists the complete wells), and the wells' plans, which carry the layout,
    // do not change with the selection (a changed plan redoes a complete well).
    let stores = zarr::declare(&init, &flows, &plate.wells);
    let previews = zarr::previews(&init, &flows, &wells);
    let names: Vec<String> = pipeline.steps.iter().map(|s| s.name.clone()).collect();
    notes.extend(zarr::notes(&stores, &flows, &names));
    // Phase 3.
    let storage = materialize::plan(&init, &flows, plate, &names);
    // Phase 4.
    let policies: Vec<GpuPolicy> = init.steps.iter().map(|s| s.config.gpu_policy).collect();
    let prefer: Vec<Vec<MemoryType>> = init.steps.iter().map(|s| s.config.prefer.clone()).collect();
    let resolved = phase4_resolve(pipeline, options, (&policies, &prefer), &init, &storage, &previews, &mut errors);
    // Phase 5.
    errors.extend(gpu::check(pipeline, &resolved, &policies, &options.gpus, source));
    notes.extend(gpu::require_note(pipeline, &resolved, &policies));

    if !errors.is_empty() {
        errors.sort_by_key(error_order);
        // The checks and phase 1 may find the same problem (a dict-entry link): report it once.
        let mut seen: Vec<PipelineError> = Vec::with_capacity(errors.len());
        errors.retain(|e| {
            let new = !seen.contains(e);
            if new {
                seen.push(e.clone());
            }
            new
        });
        return Err(errors);
    }
    let mut resolved: Vec<variants::Resolved> = resolved.into_iter().flatten().collect();
    // Phase 4a: sample values (a normalization's target) within what the plate stores.
    notes.extend(sample_range::fit(pipeline, registry, &mut resolved, plate.sample_range));
    // Phase 4b.
    let facts: Vec<partition::StepFacts<'_>> = (0..pipeline.steps.len())
        .map(|i| partition::StepFacts {
            variable: &pipeline.steps[i].variable_components,
            values_in: &flows[i].values_in,
            partitionable: resolved.get(i).is_some_and(|r| !r.uses_gpu)
                && init.steps[i].special_outputs.is_empty()
                && previews[i].is_none()
                && stores[i].0.is_none()
                && stores[i].1.is_none(),
            reads: &storage.steps[i].reads,
            writes: &storage.steps[i].writes,
            read_by: storage.steps[i].read_by,
        })
        .collect();
    let segments = partition::segments(&facts);
    let mut storage = storage;
    let releases = |i: usize| resolved.get(i).is_some_and(|r| !r.uses_gpu);
    storage.host_peak_bytes = materialize::host_peak(&storage, &flows, releases, &segments);
    // Phase 4c: results a later step reuses, while the well's peak stays within its budget.
    let mut sharings = Vec::new();
    for sharing in reuse::find(pipeline, &init, &flows, &storage, &resolved) {
        let mut with = storage.clone();
        reuse::apply(&mut with, std::slice::from_ref(&sharing));
        with.host_peak_bytes = materialize::host_peak(&with, &flows, releases, &segments);
        let budget = init.steps[sharing.to].config.memory_budget_mib;
        let bytes = storage.steps[sharing.to].output_bytes;
        match with.host_peak_bytes {
            Some(peak) if peak <= budget.saturating_mul(1024 * 1024) => {
                notes.push(reuse::note(pipeline, &sharing, bytes, None));
                storage = with;
                sharings.push(sharing);
            }
            peak => notes.push(reuse::note(pipeline, &sharing, bytes, Some((peak, budget)))),
        }
    }
    let template = Template {
        pipeline,
        registry,
        init: &init,
        stores: &stores,
        previews: &previews,
        resolved: &resolved,
        scales: &scales,
        origins: &origins,
        segments: &segments,
        sharings: &sharings,
    };
    let common: Vec<Arc<StepCommon>> =
        (0..pipeline.steps.len()).map(|i| Arc::new(template.common(i, &flows[i], &storage.steps[i]))).collect();
    let plans = wells
        .par_iter()
        .enumerate()
        .map(|(k, &well)| FrozenWellPlan::freeze(template.expand(&common, &storage, plate, well, k, &options.gpus)))
        .collect();
    Ok(CompiledPlate {
        pipeline: pipeline.name.clone(),
        plate: plate.root.clone(),
        output_root: init.output_root.clone(),
        results_dir: init.output_root.join(&init.run_config.results_folder),
        viewers: zarr::viewers(&previews),
        wells: plans,
        notes,
    })
}

/// The checks that need no plan: functions and parameters, special-input order, well filters.
fn check_all(pipeline: &Pipeline, plate: &PlateInfo, options: &CompileOptions<'_>) -> Vec<PipelineError> {
    let mut errors = check_functions(pipeline, options.registry, options.source);
    errors.extend(check_special_io(pipeline, options.registry, options.source));
    errors.extend(check_wells(pipeline, &plate.wells, options.source));
    errors
}

/// The wells to compile: the plate's, or those of `only` (in plate order); a well of `only` that
/// the plate does not have is an error.
fn select_wells(plate: &PlateInfo, only: Option<&[WellId]>, errors: &mut Vec<PipelineError>) -> Vec<WellId> {
    let Some(only) = only else { return plate.wells.clone() };
    for w in only.iter().filter(|w| !plate.wells.contains(w)) {
        errors.push(PipelineError::Config {
            at: crate::pipeline::Line(None),
            step: None,
            message: format!("well {w} was asked for, but the plate does not have it"),
        });
    }
    plate.wells.iter().copied().filter(|w| only.contains(w)).collect()
}

/// Phase 4: resolve every step with its stack arriving and leaving as `ndarray`; then, if nothing
/// failed so far, again with the outputs that [`keep_on_device`] leaves on a GPU, so that
/// consecutive GPU steps hand their data over without a round trip through the host.
fn phase4_resolve(
    pipeline: &Pipeline,
    options: &CompileOptions<'_>,
    (policies, prefer): (&[GpuPolicy], &[Vec<MemoryType>]),
    init: &init::Init,
    storage: &materialize::StoragePlan,
    previews: &[Option<PreviewPlan>],
    errors: &mut Vec<PipelineError>,
) -> Vec<Option<variants::Resolved>> {
    let n = pipeline.steps.len();
    let resolve = |incoming: &[MemoryType], stored: &[MemoryType]| {
        variants::resolve_steps(
            pipeline,
            options.registry,
            &options.conversions,
            policies,
            prefer,
            !options.gpus.is_empty(),
            incoming,
            stored,
            options.source,
        )
    };
    let host = vec![MemoryType::Ndarray; n];
    let (resolved, contract_errors) = resolve(&host, &host);
    errors.extend(contract_errors);
    if !errors.is_empty() {
        return resolved;
    }
    let all: Vec<variants::Resolved> = resolved.iter().flatten().cloned().collect();
    if all.len() != n {
        return resolved;
    }
    let stored = variants::device_resident(&all, &keep_on_device(init, storage, previews));
    if stored.iter().all(|m| *m == MemoryType::Ndarray) {
        return resolved;
    }
    let incoming: Vec<MemoryType> = (0..n).map(|i| if i == 0 { MemoryType::Ndarray } else { stored[i - 1] }).collect();
    let (again, again_errors) = resolve(&incoming, &stored);
    errors.extend(again_errors);
    again
}

/// Per step: whether its output may stay where it is made for the next step — it is written to
/// memory, read from there by the next step, and neither checkpointed nor previewed.
fn keep_on_device(
    init: &init::Init,
    storage: &materialize::StoragePlan,
    previews: &[Option<PreviewPlan>],
) -> Vec<bool> {
    (0..init.steps.len())
        .map(|i| {
            let (w, next) = (&storage.steps[i].writes, storage.steps.get(i + 1).map(|s| &s.reads));
            matches!(w, Location::Memory { .. })
                && next == Some(w)
                && init.steps[i].checkpoint.is_none()
                && previews[i].is_none()
        })
        .collect()
}

/// Errors sort by the step they concern (file order); plate-level ones first.
fn error_order(e: &PipelineError) -> usize {
    use PipelineError as E;
    match e {
        E::File { .. } | E::Empty => 0,
        E::Config { step, .. } => step.as_ref().map_or(0, |s| s.index),
        E::UnknownFunction { step, .. }
        | E::UnknownParameter { step, .. }
        | E::BadParameter { step, .. }
        | E::BrokenRule { step, .. }
        | E::OverBudget { step, .. }
        | E::MissingParameter { step, .. }
        | E::Grouping { step, .. }
        | E::UnknownWell { step, .. }
        | E::MissingSpecialInput { step, .. }
        | E::DuplicateProducer { step, .. }
        | E::MultiGroupProducer { step, .. }
        | E::DictKey { step, .. }
        | E::Special { step, .. }
        | E::DictEntryLink { step, .. }
        | E::NoConversion { step, .. }
        | E::Gpu { step, .. }
        | E::OutputCollision { step, .. } => step.index,
    }
}

/// The plate-level results every well's plan is expanded from.
struct Template<'a> {
    pipeline: &'a Pipeline,
    registry: &'a Registry,
    init: &'a init::Init,
    stores: &'a [(Option<ZarrStorePlan>, Option<ZarrStorePlan>)],
    previews: &'a [Option<PreviewPlan>],
    resolved: &'a [variants::Resolved],
    scales: &'a [Option<f64>],
    origins: &'a [Option<(f64, f64)>],
    segments: &'a [Segment],
    sharings: &'a [reuse::Sharing],
}

impl Template<'_> {
    /// The part of step `i`'s plan that every well shares.
    fn common(&self, i: usize, flow: &components::Flow, storage: &materialize::Storage) -> StepCommon {
        let step = &self.pipeline.steps[i];
        let init = &self.init.steps[i];
        let resolved = &self.resolved[i];
        StepCommon {
            index: i + 1,
            name: step.name.clone(),
            config: init.config.clone(),
            variable_components: step.variable_components.clone(),
            group_by: step.group_by,
            input_source: init.input_source,
            components_in: flow.values_in.clone(),
            components_out: flow.values_out.clone(),
            calls_per_well: flow.calls_per_well,
            reads: storage.reads.clone(),
            writes: storage.writes.clone(),
            read_by: storage.read_by,
            zarr_store: self.stores[i].0.clone(),
            checkpoint_zarr_store: self.stores[i].1.clone(),
            func: resolved.func.clone(),
            cpu_fallback: fallback::uses_gpu(&resolved.func)
                .then(|| fallback::cpu_fallback(&resolved.func, self.registry))
                .flatten(),
            convert_output: resolved.convert_output,
            output_memory: resolved.convert_output.map_or(resolved.output_memory, |c| c.to),
            special_inputs: init.special_inputs.clone(),
            estimated_output_bytes: storage.output_bytes,
            preview: self.previews[i].clone(),
            pixel_scale: self.scales.get(i).copied().flatten(),
            pixel_origin: self.origins.get(i).copied().flatten().unwrap_or((0.0, 0.0)),
            shares: self.sharings.iter().find(|s| s.from == i).map(reuse::Sharing::on_sharer),
            reuses: self.sharings.iter().find(|s| s.to == i).map(reuse::Sharing::on_reuser),
        }
    }

    /// One well's plan: the shared step plans plus the well's checkpoints, file names and GPU.
    fn expand(
        &self,
        common: &[Arc<StepCommon>],
        storage: &materialize::StoragePlan,
        plate: &PlateInfo,
        well: WellId,
        well_index: usize,
        gpus: &GpuInventory,
    ) -> WellPlan {
        let steps: Vec<StepPlan> = common
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let init = &self.init.steps[i];
                let checkpoint = init
                    .checkpoint
                    .as_ref()
                    .filter(|c| c.wells.as_ref().is_none_or(|w| w.contains(&well)))
                    .map(|c| c.location.clone());
                let special_outputs = init
                    .special_outputs
                    .iter()
                    .map(|(key, o)| {
                        let plan = SpecialOutputPlan {
                            function: o.function.clone(),
                            memory_key: format!("special/{key}"),
                            results_dir: init.results_dir.clone(),
                            stem: format!("{well}_{key}"),
                            materializer: o.materializer.clone(),
                            per_group: o.per_group,
                        };
                        (key.clone(), plan)
                    })
                    .collect();
                let gpu = if self.resolved[i].uses_gpu {
                    gpu::assign(gpus, well_index, init.config.gpu_slots, storage.peak_bytes)
                } else {
                    None
                };
                StepPlan { common: Arc::clone(c), checkpoint, special_outputs, gpu }
            })
            .collect();
        let write_behind_bytes = materialize::write_behind_bytes(&steps, storage);
        WellPlan {
            well,
            pipeline: self.pipeline.name.clone(),
            plate: plate.root.clone(),
            output_root: self.init.output_root.clone(),
            estimated_peak_bytes: storage.host_peak_bytes.map(|b| b + write_behind_bytes),
            write_behind_bytes,
            spill_reason: storage.spill_reason.clone(),
            steps,
            segments: self.segments.to_vec(),
        }
    }
}
