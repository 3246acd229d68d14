//! The executor's stages without a plate on disk: a pipeline compiled for a plate described in
//! memory, one step run by its `StepRunner` on planes seeded into the well's memory store, and its
//! output and special data read back from that store at the paths the plan names.

use std::path::PathBuf;

use hcs_core::{NdarrayStack, Registry};
use hcs_exec::job::{Sinks, WellJob};
use hcs_exec::output::Sink;
use hcs_exec::slots::DeviceSlots;
use hcs_exec::state::{Planes, WellRun};
use hcs_exec::step::StepRunner;
use hcs_macros::memory;
use hcs_plan::compiler::{CompileOptions, Location, PlateInfo, compile};
use hcs_plan::pipeline::{FunctionPattern, FunctionStep, Pipeline};
use hcs_plate::{Component, ComponentIndex, FormatKind, ImageKey, Plate, PlateMetadata, WellId};
use hcs_vfs::{Data, Store};

/// Adds one.
#[memory(ndarray)]
fn stage_plus_one(stack: NdarrayStack) -> NdarrayStack {
    stack + 1.0
}

/// The sum of all samples, as a special output; the stack passes through.
#[memory(ndarray)]
#[hcs_macros::special_outputs(stage_total)]
fn stage_sum(stack: NdarrayStack) -> (NdarrayStack, f64) {
    let total = f64::from(stack.sum());
    (stack, total)
}

/// Subtracts the total an earlier call made.
#[memory(ndarray)]
#[hcs_macros::special_inputs(stage_total)]
fn stage_minus_total(stack: NdarrayStack, stage_total: &f64) -> NdarrayStack {
    stack - *stage_total as f32
}

/// Multiplies by a factor.
#[memory(ndarray)]
fn stage_scale(stack: NdarrayStack, #[param(default = 1.0, doc = "factor")] factor: f32) -> NdarrayStack {
    stack * factor
}

/// No persistent location is reached by the middle step.
struct NoSinks;

impl Sinks for NoSinks {
    fn sink<'s>(&'s self, _: &'s Location) -> Option<Sink<'s>> {
        None
    }
}

fn memory_only_plate() -> Plate {
    Plate {
        root: PathBuf::from("/nonexistent/plate"),
        metadata: PlateMetadata {
            format: FormatKind::Imagexpress,
            name: "in memory".into(),
            grid: Some((1, 1)),
            pixel_size_um: None,
            z_spacing_um: None,
            site_step_um: (None, None),
            channels: Vec::new(),
            tile_shape: Some((2, 3)),
            dtype: None,
        },
        index: ComponentIndex::default(),
        unmatched: Vec::new(),
        disagreements: Vec::new(),
    }
}

#[test]
fn a_middle_step_runs_from_the_memory_store_and_leaves_output_and_special_data_there() {
    let pipeline = Pipeline::new("stages")
        .step(FunctionStep::new("one", "stage_plus_one"))
        .step(
            FunctionStep::new("two", FunctionPattern::chain(["stage_sum", "stage_minus_total"]))
                .variable_components([Component::Z]),
        )
        .step(FunctionStep::new("three", "stage_plus_one"));
    let info = PlateInfo::regular("/nonexistent/plate", 1, 1, (1, 1), 1, 2, 1, (2, 3));
    let registry = Registry::global();
    let compiled = compile(&pipeline, &info, &CompileOptions::new(registry)).expect("compiles");
    let plan = &compiled.wells[0];
    let step = &plan.steps[1];
    assert!(matches!(step.reads, Location::Memory { .. }), "{:?}", step.reads);
    assert!(matches!(step.writes, Location::Memory { .. }), "{:?}", step.writes);

    // Seed the well's memory store with what step 1 would have written: two z-planes.
    let key = |z| ImageKey { well: WellId::new(0, 1), timepoint: 1, site: 1, channel: 1, z };
    let seeded: Planes = [(key(1), 1.0f32), (key(2), 2.0)]
        .into_iter()
        .map(|(k, v)| (k, ndarray::Array2::from_elem((2, 3), v).into_shared()))
        .collect();
    let mut run = WellRun::new(plan);
    run.save(plan, &step.reads, &seeded).expect("seed the input");

    let plate = memory_only_plate();
    let slots = DeviceSlots::default();
    let job = WellJob {
        plan,
        plate: &plate,
        registry,
        sinks: &NoSinks,
        dtype: hcs_vfs::Dtype::U16,
        gpu_slots: &slots,
        keep_failed: false,
        on_step: None,
        on_output: None,
    };
    StepRunner { job: &job, step, last: false, part: None }.run(&mut run).expect("step 2 runs");

    // The input was freed once read; the output is at the step's memory location.
    assert!(run.keys_at(&step.reads).is_empty());
    assert_eq!(run.keys_at(&step.writes), [key(1), key(2)]);
    let out = run.load(plan, &step.writes, &[key(1), key(2)]).expect("output");
    let total = 6.0 * 1.0 + 6.0 * 2.0; // one group: both z-planes stacked
    assert_eq!(out[[0, 0, 0]], 1.0 - total);
    assert_eq!(out[[1, 1, 2]], 2.0 - total);

    // The special output is kept at the plan's memory key for later steps.
    let memory_key = &step.special_outputs["stage_total"].memory_key;
    assert_eq!(memory_key, "special/stage_total");
    let kept = run.memory.load(std::path::Path::new(memory_key)).expect("kept special output");
    assert!(matches!(kept, Data::Value(_)));
}

#[test]
fn the_fingerprint_ignores_workers_and_path_spelling_but_not_parameters() {
    use hcs_plan::pipeline::{ConfigLayer, FunctionCall, Workers};
    let registry = Registry::global();
    let info = PlateInfo::regular("/data/plate", 1, 1, (1, 1), 1, 2, 1, (2, 3));
    let plan_for = |out: &str, workers: usize, factor: f64| {
        let call = FunctionCall::new("stage_scale").param("factor", factor);
        let pipeline = Pipeline::new("fp").step(FunctionStep::new("one", call));
        let overrides = ConfigLayer {
            output_root: Some(out.into()),
            workers: Some(Workers::Count(workers)),
            ..ConfigLayer::default()
        };
        let options = CompileOptions { overrides, ..CompileOptions::new(registry) };
        compile(&pipeline, &info, &options).expect("compiles").wells[0].clone()
    };
    let a = plan_for("o", 4, 1.0);
    let b = plan_for("/home/me/o", 1, 1.0);
    assert_ne!(serde_json::to_string(&*a).ok(), serde_json::to_string(&*b).ok(), "the plans differ in spelling");
    assert_eq!(hcs_exec::output::plan_crc(&a), hcs_exec::output::plan_crc(&b));
    let c = plan_for("o", 4, 2.0);
    assert_ne!(hcs_exec::output::plan_crc(&a), hcs_exec::output::plan_crc(&c), "another parameter, another output");
    // Memory figures change how a well runs, not its bytes: a resume does not redo the well.
    let mut tuned = (*a).clone();
    tuned.write_behind_bytes += 1 << 20;
    tuned.estimated_peak_bytes = tuned.estimated_peak_bytes.map(|b| b + (1 << 20));
    assert_eq!(hcs_exec::output::plan_crc(&a), hcs_exec::output::plan_crc(&tuned));
}
